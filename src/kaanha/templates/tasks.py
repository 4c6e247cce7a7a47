"""Background work of templates: the sandbox's review, syncs with Meta, and the 15-minute sync round."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.models import Job, Template
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.templates import meta
from kaanha.templates.review import REVIEW_JOB, review
from kaanha.templates.schemas import template_out
from kaanha.templates.sync import SYNC_JOB, apply_remote, claim_due_syncs
from kaanha.worker.runner import Lease, PermanentFailure, RetryLater, periodic, stepwise_task, task

logger = logging.getLogger("kaanha.templates")


@task(REVIEW_JOB)
async def review_template(session: AsyncSession, _runtime: Runtime, job: Job) -> None:
    """The sandbox's verdict on a PENDING template: APPROVED, or REJECTED with Meta's reason code."""
    template = await session.get(Template, job.payload["templateId"])
    if template is None or template.status != "PENDING" or template.external_id is not None:
        return  # deleted meanwhile, or Meta's to decide
    verdict = review(template.category, template.components)
    # Conditional: a verdict never overwrites a status something else set meanwhile.
    changed = await session.execute(
        update(Template)
        .where(Template.id == template.id, Template.status == "PENDING")
        .values(status=verdict.status, rejected_reason=verdict.reason, updated_at=now())
        .returning(*Template.__table__.columns),
        execution_options={"synchronize_session": False},
    )
    for row in changed.all():
        reviewed = Template(**row._mapping)
        await emit(
            session,
            organization_id=reviewed.organization_id,
            type=event_types.TEMPLATE_UPDATED,
            data=template_out(reviewed),
        )


@stepwise_task(SYNC_JOB)
async def sync_templates(runtime: Runtime, job: Job, lease: Lease) -> None:
    """Read Meta's list outside any transaction, then apply it in one."""
    organization_id = job.organization_id or ""
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        connection = await get_connection(session, organization_id)
    if connection.type != "cloud_api":
        return
    fetched_at = now()
    try:
        remote = await meta.fetch_all(runtime, connection)
    except meta.MetaUnreachable as error:
        raise RetryLater(error.message) from None
    except meta.MetaRefused as error:
        logger.warning("template sync of %s refused by Meta: %s", organization_id, error.message)
        raise PermanentFailure(error.message) from None
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        summary = await apply_remote(session, organization_id=organization_id, remote=remote, fetched_at=fetched_at)
    logger.info("templates of %s synced: %s", organization_id, summary.model_dump())


@periodic("templates.sync_due", every=timedelta(minutes=1))
async def claim_template_syncs(session: AsyncSession, _runtime: Runtime) -> None:
    await claim_due_syncs(session)

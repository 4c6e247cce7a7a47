"""Keeping an organization's templates in line with Meta's list: on demand, on connecting, and every 15 minutes.

Meta is the truth for a Cloud API connection: templates are matched by (name, language), updated in
place, created when Meta has one we don't, and deleted when Meta no longer has them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Template, WhatsAppConnection
from kaanha.templates.repository import TemplateRepository
from kaanha.templates.schemas import SyncSummary, template_out
from kaanha.worker.queue import enqueue

SYNC_JOB = "templates.sync"
SYNC_EVERY = timedelta(minutes=15)
# Connections claimed per run of the periodic check; the rest wait a minute for the next run.
CLAIM_LIMIT = 500


def enqueue_sync(session: AsyncSession, *, organization_id: str) -> None:
    """A sync job in the caller's transaction; a failed one waits for the next 15-minute round."""
    enqueue(session, kind=SYNC_JOB, payload={}, organization_id=organization_id, max_attempts=3)


async def claim_due_syncs(session: AsyncSession) -> list[str]:
    """Claim the connected Cloud API organizations due a sync and queue one job each; returns their ids.

    One conditional UPDATE both picks and marks them, so workers running this side by side never claim
    the same connection twice: a second UPDATE waits on the row lock, then finds it no longer due.
    """
    moment = now()
    synced_at = WhatsAppConnection.templates_synced_at
    due = (
        (WhatsAppConnection.type == "cloud_api")
        & WhatsAppConnection.connected.is_(True)
        & WhatsAppConnection.waba_id.is_not(None)
        & (synced_at.is_(None) | (synced_at < moment - SYNC_EVERY))
    )
    candidates = select(WhatsAppConnection.organization_id).where(due).limit(CLAIM_LIMIT)
    claimed = await session.scalars(
        update(WhatsAppConnection)
        .where(due, WhatsAppConnection.organization_id.in_(candidates))
        # updated_at kept: a sync is not an edit of the connection.
        .values(templates_synced_at=moment, updated_at=WhatsAppConnection.updated_at)
        .returning(WhatsAppConnection.organization_id),
        execution_options={"synchronize_session": False},
    )
    organization_ids = list(claimed)
    for organization_id in organization_ids:
        enqueue_sync(session, organization_id=organization_id)
    return organization_ids


async def apply_remote(
    session: AsyncSession, *, organization_id: str, remote: list[dict[str, Any]], fetched_at: datetime
) -> SyncSummary:
    """Make the organization's templates those of Meta's list; emits `template.updated` on each status change.

    `fetched_at` is when the list was asked for: a template created since may be missing from it, and stays.
    """
    repository = TemplateRepository(session, organization_id)
    local = {(template.name, template.language): template for template in await repository.everything()}
    seen: set[tuple[str, str]] = set()
    created = updated = 0
    for item in remote:
        fields = _fields(item)
        key = (str(fields.get("name")), str(fields.get("language")))
        if not all(key) or key in seen:
            continue
        seen.add(key)
        template = local.get(key)
        if template is None:
            created += await _create(repository, fields)
        elif await _update(session, template, fields):
            updated += 1
    doomed = [template for key, template in local.items() if key not in seen and template.created_at < fetched_at]
    for template in doomed:
        await session.delete(template)
    await session.flush()
    await session.execute(
        update(WhatsAppConnection)
        .where(WhatsAppConnection.organization_id == organization_id)
        .values(templates_synced_at=now(), updated_at=WhatsAppConnection.updated_at)
    )
    return SyncSummary(created=created, updated=updated, deleted=len(doomed), total=len(seen))


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of Meta's list; a field Meta left out is left out (the stored value stays)."""
    status = str(item.get("status") or "PENDING").upper()[:20]
    fields: dict[str, Any] = {
        "name": str(item.get("name") or "")[:512],
        "language": str(item.get("language") or "")[:15],
        "status": status,
        "category": str(item.get("category") or "UTILITY").upper()[:20],
        "components": [c for c in item.get("components") or [] if isinstance(c, dict)],
        "parameter_format": "NAMED" if str(item.get("parameter_format", "")).upper() == "NAMED" else "POSITIONAL",
        "external_id": str(item.get("id") or "")[:64] or None,
    }
    if status != "REJECTED":
        fields["rejected_reason"] = None
    elif "rejected_reason" in item:
        reason = str(item.get("rejected_reason") or "")
        fields["rejected_reason"] = reason[:200] if reason and reason != "NONE" else None
    quality = item.get("quality_score")
    if isinstance(quality, dict):  # Meta's shape: {"score": "GREEN", "date": ...}
        quality = quality.get("score")
    if quality:
        fields["quality_score"] = str(quality)[:20]
    return fields


async def _create(repository: TemplateRepository, fields: dict[str, Any]) -> int:
    moment = now()
    template = Template(id=new_id("tpl"), created_at=moment, updated_at=moment, **fields)
    # A sync running beside this one (the periodic job and POST /templates/sync) may have added it.
    return 1 if await repository.add_unless_taken(template) else 0


async def _update(session: AsyncSession, template: Template, fields: dict[str, Any]) -> bool:
    changes = {column: value for column, value in fields.items() if getattr(template, column) != value}
    if not changes:
        return False
    for column, value in changes.items():
        setattr(template, column, value)
    template.updated_at = now()
    if "status" in changes:
        await emit(
            session,
            organization_id=template.organization_id,
            type=event_types.TEMPLATE_UPDATED,
            data=template_out(template),
        )
    return True

"""Background work of broadcasts: starting one, and queueing its messages at the connection's pace.

One dispatch job per running broadcast. Each step is one transaction that holds the job's lease:
it takes the next pending recipients (in contact id order, a batch at a time, never the whole
audience) and, in that same transaction, writes each one's message and send job or the reason it
was skipped. A recipient leaves `pending` exactly when its message is written, so a crash, a restart
or a pause and resume can neither send to anyone twice nor forget anyone.

The job keeps only a couple of seconds of sends queued ahead of the sender (the connection's
messages per second, times two): the send jobs do the pacing, and a pause takes effect at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.broadcasts.repository import BroadcastNotFound, BroadcastRepository, audience_condition
from kaanha.broadcasts.service import DISPATCH_JOB, announce, check_plan, stop_broadcast
from kaanha.consent.service import marketing_block_reason
from kaanha.contacts import fields
from kaanha.errors import KaanhaError
from kaanha.events import types as event_types
from kaanha.kit.clock import now
from kaanha.messages.service import queue_broadcast_messages
from kaanha.models import Broadcast, BroadcastRecipient, Contact, Job, Message, Template
from kaanha.organizations.repository import get_connection, get_organization
from kaanha.runtime import Runtime
from kaanha.templates.repository import TemplateRepository
from kaanha.templates.service import TemplateParametersMismatch, check_parameters, render_preview
from kaanha.worker.runner import Lease, RetryLater, stepwise_task

logger = logging.getLogger("kaanha.broadcasts")

BATCH_SIZE = 200
# Sends kept queued ahead of the sender, in seconds of the connection's throughput.
QUEUED_AHEAD_SECONDS = 2
# How long a dispatch job works before giving its worker back (it is claimed again at once).
SLICE_SECONDS = 5.0
WAIT_FOR_SENDER = timedelta(milliseconds=500)
WAIT_FOR_LAST_SENDS = timedelta(seconds=1)
GO_ON = timedelta(milliseconds=10)


@dataclass(frozen=True)
class Step:
    done: bool = False
    wait: timedelta | None = None


async def _pause_after_errors(session: AsyncSession, _runtime: Runtime, job: Job, error: Exception) -> None:
    """The dispatch kept failing: pause (nothing is lost) and say why, rather than stay `running` forever."""
    broadcast = await BroadcastRepository(session, job.organization_id or "").find(job.payload.get("broadcastId", ""))
    if broadcast is None or broadcast.dispatch_job_id != job.id or broadcast.status != "running":
        return
    broadcast.status = "paused"
    broadcast.paused_at = now()
    broadcast.dispatch_job_id = None
    broadcast.status_reason = f"Paused after repeated errors while queueing ({error}); resume to go on"[:1000]
    await announce(session, broadcast, event_types.BROADCAST_PAUSED)


@stepwise_task(DISPATCH_JOB, on_give_up=_pause_after_errors)
async def dispatch_broadcast(runtime: Runtime, job: Job, lease: Lease) -> None:
    slice_ends = time.monotonic() + SLICE_SECONDS
    while True:
        async with runtime.database.transaction() as session:
            await lease.hold(session)
            repository = BroadcastRepository(session, job.organization_id or "")
            try:
                broadcast = await repository.get_for_update(job.payload["broadcastId"])
            except BroadcastNotFound:
                return
            if broadcast.dispatch_job_id != job.id:
                return  # paused, cancelled, or handed to a newer job by a resume
            if broadcast.started_at is None:
                step = await _start(session, broadcast)
            else:
                step = await _queue_next(session, runtime, broadcast)
        if step.done:
            return
        if step.wait is not None:
            raise RetryLater("waiting for the sender", delay=step.wait, count_attempt=False)
        if time.monotonic() > slice_ends:
            raise RetryLater("giving the worker back", delay=GO_ON, count_attempt=False)


async def _start(session: AsyncSession, broadcast: Broadcast) -> Step:
    """Write the audience as it is now as pending recipients (one INSERT ... SELECT, in the database)."""
    repository = BroadcastRepository(session, broadcast.organization_id)
    size = await repository.audience_size(broadcast.audience)
    try:
        check_plan((await get_organization(session, broadcast.organization_id)).plan, size)
    except KaanhaError as refusal:
        # The audience grew past the plan between scheduling and now: refuse it whole, as at creation.
        await stop_broadcast(session, broadcast, reason=refusal.message)
        await announce(session, broadcast, event_types.BROADCAST_CANCELLED)
        return Step(done=True)
    audience = select(literal(broadcast.organization_id), literal(broadcast.id), Contact.id, literal("pending")).where(
        Contact.organization_id == broadcast.organization_id,
        audience_condition(broadcast.organization_id, broadcast.audience),
    )
    await session.execute(
        insert(BroadcastRecipient).from_select(["organization_id", "broadcast_id", "contact_id", "status"], audience)
    )
    broadcast.total = await session.scalar(
        select(func.count()).where(
            BroadcastRecipient.organization_id == broadcast.organization_id,
            BroadcastRecipient.broadcast_id == broadcast.id,
        )
    )
    broadcast.status = "running"
    broadcast.started_at = now()
    await announce(session, broadcast, event_types.BROADCAST_STARTED)
    return Step()


async def _queue_next(session: AsyncSession, runtime: Runtime, broadcast: Broadcast) -> Step:
    """Queue the next batch of recipients, as many as the sender has room for; complete when all are done."""
    connection = await get_connection(session, broadcast.organization_id)
    per_second = connection.messages_per_second or runtime.settings.cloud_api.messages_per_second
    queued = await _queued_messages(session, broadcast)
    room = min(BATCH_SIZE, max(per_second * QUEUED_AHEAD_SECONDS, 1) - queued)
    if room <= 0:
        return Step(wait=WAIT_FOR_SENDER)
    batch = list(await session.execute(_next_recipients(session, broadcast, room)))
    if not batch:
        if queued:
            return Step(wait=WAIT_FOR_LAST_SENDS)
        await _complete(session, broadcast)
        return Step(done=True)
    template = await TemplateRepository(session, broadcast.organization_id).find_by_name(
        broadcast.template_name, broadcast.language
    )
    if template is None or template.status != "APPROVED":
        await _pause_for_template(session, broadcast, template)
        return Step(done=True)
    broadcast.category = template.category
    to_queue: list[tuple[BroadcastRecipient, Contact, dict[str, Any]]] = []
    for recipient, contact in batch:
        content = await _content_or_skip(runtime, broadcast, template, recipient, contact)
        if content is not None:
            to_queue.append((recipient, contact, content))
    # One set of statements for the whole batch (not one round of them per recipient): the broadcast's
    # row lock is held all along, and a 100,000-recipient broadcast is 500 such steps.
    messages = await queue_broadcast_messages(
        session,
        organization_id=broadcast.organization_id,
        broadcast_id=broadcast.id,
        items=[(contact, content) for _, contact, content in to_queue],
    )
    for (recipient, _, _), message in zip(to_queue, messages, strict=True):
        recipient.status = "queued"
        recipient.message_id = message.id
        recipient.queued_at = message.created_at
    return Step()


async def _queued_messages(session: AsyncSession, broadcast: Broadcast) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Message.organization_id == broadcast.organization_id,
            Message.broadcast_id == broadcast.id,
            Message.status == "queued",
        )
    )
    return int(count or 0)


def _next_recipients(session: AsyncSession, broadcast: Broadcast, limit: int) -> Any:
    # SKIP LOCKED: a dispatch job outliving its lease never takes the rows its successor is queueing.
    return (
        select(BroadcastRecipient, Contact)
        .join(Contact, Contact.id == BroadcastRecipient.contact_id)
        .where(
            BroadcastRecipient.organization_id == broadcast.organization_id,
            BroadcastRecipient.broadcast_id == broadcast.id,
            BroadcastRecipient.status == "pending",
        )
        .order_by(BroadcastRecipient.contact_id)
        .limit(limit)
        .with_for_update(of=BroadcastRecipient, skip_locked=True)
    )


async def _skip_reason(
    runtime: Runtime,
    broadcast: Broadcast,
    template: Template,
    contact: Contact,
    components: list[dict[str, Any]],
    missing: list[str],
) -> str | None:
    # The template's category now, not at creation: Meta may have moved it to MARKETING since.
    if template.category == "MARKETING" and (reason := marketing_block_reason(contact)):
        return reason
    if missing:
        return "missing_contact_field"
    try:
        check_parameters(template, components)
    except TemplateParametersMismatch:
        return "invalid_parameters"
    limits = runtime.settings.rate_limits
    if limits.enabled:
        limiter = runtime.rate_limiter
        # The same counter as single sends: the reference's 20 messages/hour per recipient.
        verdict = await limiter.hit(
            limiter.parse(limits.per_recipient), "recipient", broadcast.organization_id, contact.phone
        )
        if not verdict.allowed:
            return "rate_limited"
    return None


async def _content_or_skip(
    runtime: Runtime,
    broadcast: Broadcast,
    template: Template,
    recipient: BroadcastRecipient,
    contact: Contact,
) -> dict[str, Any] | None:
    """The message content for this recipient, or None when it is skipped (with the reason recorded)."""
    missing: list[str] = []
    components = fields.render_structure(broadcast.components, contact, missing)
    reason = await _skip_reason(runtime, broadcast, template, contact, components, missing)
    if reason is not None:
        recipient.status = "skipped"
        recipient.skip_reason = reason
        return None
    return {
        "templateName": template.name,
        "language": template.language,
        "components": components,
        "category": template.category,
        "preview": render_preview(template, components),
    }


async def _pause_for_template(session: AsyncSession, broadcast: Broadcast, template: Template | None) -> None:
    """Meta paused, disabled or deleted the template mid-way: pause, so nothing is skipped for it."""
    state = "was deleted" if template is None else f"is {template.status}"
    broadcast.status = "paused"
    broadcast.paused_at = now()
    broadcast.dispatch_job_id = None
    broadcast.status_reason = (
        f"Template '{broadcast.template_name}' ({broadcast.language}) {state}: resume once it is APPROVED again"
    )
    await announce(session, broadcast, event_types.BROADCAST_PAUSED)


async def _complete(session: AsyncSession, broadcast: Broadcast) -> None:
    broadcast.status = "completed"
    broadcast.completed_at = now()
    broadcast.dispatch_job_id = None
    await announce(session, broadcast, event_types.BROADCAST_COMPLETED)

"""Broadcast rules: what may be sent to whom, the plan's limit, and pausing, resuming and cancelling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.broadcasts.repository import (
    BroadcastRepository,
    message_tallies,
    recipient_filter,
    recipient_tallies,
    recipients_with_messages,
)
from kaanha.broadcasts.schemas import (
    Audience,
    AudienceCount,
    BroadcastCounts,
    BroadcastCreate,
    BroadcastOut,
    RecipientOut,
)
from kaanha.contacts import fields
from kaanha.contacts.repository import ContactNotFound
from kaanha.errors import Conflict, Forbidden, InvalidRequest
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.messages.service import SEND_JOB
from kaanha.messages.status import advance_status
from kaanha.models import Broadcast, BroadcastRecipient, Contact, Message
from kaanha.organizations.plans import broadcast_limit, plan_name
from kaanha.organizations.repository import get_organization
from kaanha.templates.service import resolve_for_send
from kaanha.worker.queue import enqueue

DISPATCH_JOB = "broadcasts.dispatch"
# A broadcast may be planned up to a year ahead.
MAX_SCHEDULE_AHEAD = timedelta(days=365)
CANCELLED_UNSENT = "Not sent: the broadcast was cancelled before this message left"


class PlanLimitExceeded(Forbidden):
    code = "plan_limit_exceeded"


class EmptyAudience(InvalidRequest):
    code = "empty_audience"


class InvalidSchedule(InvalidRequest):
    code = "invalid_schedule"


class BroadcastStateConflict(Conflict):
    code = "invalid_broadcast_state"


class _SampleAttributes(dict[str, Any]):
    """Every attribute has a value: a broadcast's parameters are checked against the template once, up front."""

    def get(self, key: str, default: Any = None) -> Any:
        return "sample"


def _sample_contact() -> Contact:
    return Contact(name="Asha", phone="+919876543210", email="asha@example.com", attributes=_SampleAttributes())


def check_plan(plan: str, audience_size: int) -> None:
    limit = broadcast_limit(plan)
    if limit is not None and audience_size > limit:
        raise PlanLimitExceeded(
            f"The {plan_name(plan)} plan allows at most {limit:,} contacts per broadcast and this audience has "
            f"{audience_size:,}: narrow the audience (tags or contactIds), or upgrade to Pro for unlimited broadcasts"
        )


async def count_audience(session: AsyncSession, *, organization_id: str, audience: Audience) -> AudienceCount:
    """How many contacts an audience names now, beside the plan's limit (the composer shows both)."""
    organization = await get_organization(session, organization_id)
    chosen = audience.model_dump(by_alias=True, exclude_none=True)
    await _check_contact_ids(BroadcastRepository(session, organization_id), chosen)
    size = await BroadcastRepository(session, organization_id).audience_size(chosen)
    return AudienceCount(count=size, plan_limit=broadcast_limit(organization.plan))


async def _check_contact_ids(repository: BroadcastRepository, audience: dict[str, Any]) -> None:
    wanted = list(dict.fromkeys(audience.get("contactIds") or []))
    if not wanted:
        return
    existing = await repository.existing_contact_ids(wanted)
    missing = [contact_id for contact_id in wanted if contact_id not in existing]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ContactNotFound(f"Contacts not found: {', '.join(missing[:5])}{more}")


async def create_broadcast(session: AsyncSession, *, organization_id: str, data: BroadcastCreate) -> BroadcastOut:
    """Check the template, its parameters, the audience and the plan; then store it with its dispatch job.

    Nothing is sent here: the dispatch job writes the recipients when the broadcast starts (now, or
    at `scheduledAt`) and queues their messages at the connection's pace.
    """
    fields.check_structure(data.components, where="components")
    template = await resolve_for_send(
        session,
        organization_id=organization_id,
        name=data.template_name,
        language=data.language,
        components=fields.render_structure(data.components, _sample_contact(), []),
    )
    moment = now()
    if data.scheduled_at is not None:
        if data.scheduled_at <= moment:
            raise InvalidSchedule("scheduledAt is in the past: give a future time, or leave it out to start now")
        if data.scheduled_at > moment + MAX_SCHEDULE_AHEAD:
            raise InvalidSchedule("scheduledAt is more than a year ahead")
    repository = BroadcastRepository(session, organization_id)
    audience = data.audience.model_dump(by_alias=True, exclude_none=True)
    await _check_contact_ids(repository, audience)
    size = await repository.audience_size(audience)
    if size == 0:
        raise EmptyAudience("The audience matches no contacts (with audience.all, only opted-in contacts count)")
    check_plan((await get_organization(session, organization_id)).plan, size)
    broadcast = repository.add(
        Broadcast(
            id=new_id("bc"),
            name=data.name,
            template_name=template.name,
            language=template.language,
            category=template.category,
            components=data.components,
            audience=audience,
            status="scheduled" if data.scheduled_at else "running",
            total=size,
            scheduled_at=data.scheduled_at,
            created_at=moment,
            updated_at=moment,
        )
    )
    _start_dispatch(session, broadcast, run_at=data.scheduled_at)
    await session.flush()
    return await broadcast_out(session, broadcast)


def _start_dispatch(session: AsyncSession, broadcast: Broadcast, *, run_at: Any = None) -> None:
    job = enqueue(
        session,
        kind=DISPATCH_JOB,
        payload={"broadcastId": broadcast.id},
        organization_id=broadcast.organization_id,
        run_at=run_at,
    )
    broadcast.dispatch_job_id = job.id


async def counts_of(session: AsyncSession, broadcast: Broadcast) -> tuple[BroadcastCounts, dict[str, int]]:
    recipients = await recipient_tallies(session, broadcast)
    messages = await message_tallies(session, broadcast)
    skipped_by_reason = {reason: n for (status, reason), n in recipients.by_status.items() if status == "skipped"}
    total = broadcast.total or 0
    counts = BroadcastCounts(
        total=total,
        # Before it starts no recipient is written yet: the whole audience is still to go.
        queued=total if broadcast.started_at is None else recipients.count("pending") + messages["queued"],
        sent=messages["sent"],
        delivered=messages["delivered"],
        read=messages["read"],
        # A message held back (by a cancel, or an opt-out since it was queued) counts as such, not as failed.
        failed=messages["failed"] - recipients.held_back_messages,
        skipped=sum(skipped_by_reason.values()),
        cancelled=recipients.count("cancelled"),
        replied=recipients.replied,
    )
    return counts, {str(reason): n for reason, n in sorted(skipped_by_reason.items(), key=lambda item: str(item[0]))}


def _audience_summary(audience: dict[str, Any]) -> dict[str, Any]:
    """The audience as chosen, with a count instead of the ids: 10,000 of them in every answer and event is too much."""
    summary = {key: value for key, value in audience.items() if key != "contactIds"}
    if "contactIds" in audience:
        summary["contactIdCount"] = len(audience["contactIds"])
    return summary


async def broadcast_out(session: AsyncSession, broadcast: Broadcast) -> BroadcastOut:
    counts, skipped_by_reason = await counts_of(session, broadcast)
    if broadcast.status == "completed" or not counts.total:
        progress = 1.0 if broadcast.status == "completed" else 0.0
    else:
        progress = round(max(0, counts.total - counts.queued) / counts.total, 4)
    return BroadcastOut(
        id=broadcast.id,
        name=broadcast.name,
        template_name=broadcast.template_name,
        language=broadcast.language,
        category=broadcast.category,
        components=broadcast.components,
        audience=_audience_summary(broadcast.audience),
        status=broadcast.status,
        counts=counts,
        skipped_by_reason=skipped_by_reason,
        progress=progress,
        status_reason=broadcast.status_reason,
        scheduled_at=broadcast.scheduled_at,
        started_at=broadcast.started_at,
        paused_at=broadcast.paused_at,
        completed_at=broadcast.completed_at,
        cancelled_at=broadcast.cancelled_at,
        created_at=broadcast.created_at,
    )


async def list_broadcasts(
    session: AsyncSession, *, organization_id: str, status: str | None, page: PageRequest
) -> Page[BroadcastOut]:
    repository = BroadcastRepository(session, organization_id)
    broadcasts, total = await repository.page(repository.listing(status=status), page)
    return Page.of([await broadcast_out(session, b) for b in broadcasts], request=page, total=total)


async def get_broadcast(session: AsyncSession, *, organization_id: str, broadcast_id: str) -> BroadcastOut:
    return await broadcast_out(session, await BroadcastRepository(session, organization_id).get(broadcast_id))


def _recipient_status(recipient: BroadcastRecipient, message: Message | None) -> str:
    if recipient.status == "queued" and message is not None:
        return message.status
    return recipient.status


async def list_recipients(
    session: AsyncSession, *, organization_id: str, broadcast_id: str, status: str | None, page: PageRequest
) -> Page[RecipientOut]:
    await BroadcastRepository(session, organization_id).get(broadcast_id)
    query = recipients_with_messages(organization_id, broadcast_id)
    if status:
        query = query.where(recipient_filter(status))
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.execute(query.order_by(BroadcastRecipient.contact_id).limit(page.limit).offset(page.offset))
    items = []
    for recipient, phone, name, message in rows:
        error = None
        if message is not None and (message.error_code is not None or message.error_message):
            error = {"code": message.error_code, "message": message.error_message}
        items.append(
            RecipientOut(
                contact_id=recipient.contact_id,
                phone=phone,
                name=name,
                status=_recipient_status(recipient, message),
                skip_reason=recipient.skip_reason,
                message_id=recipient.message_id,
                error=error,
                queued_at=recipient.queued_at,
                sent_at=message.sent_at if message else None,
                delivered_at=message.delivered_at if message else None,
                read_at=message.read_at if message else None,
                replied_at=recipient.replied_at,
            )
        )
    return Page.of(items, request=page, total=int(total or 0))


async def announce(session: AsyncSession, broadcast: Broadcast, event_type: str) -> BroadcastOut:
    """Emit `event_type` with the broadcast as it now is (counts included)."""
    await session.flush()
    out = await broadcast_out(session, broadcast)
    await emit(session, organization_id=broadcast.organization_id, type=event_type, data=out)
    return out


async def _change_status(
    session: AsyncSession, *, organization_id: str, broadcast_id: str, allowed: tuple[str, ...], values: dict[str, Any]
) -> Broadcast:
    """Move the broadcast out of one of the `allowed` statuses in one conditional UPDATE, or answer 409.

    The UPDATE comes first, so the row is locked (on SQLite, the database) before anything is read:
    the dispatcher completing it at the same moment can't be overwritten, whichever commits first.
    """
    changed = await session.scalar(
        update(Broadcast)
        .where(
            Broadcast.organization_id == organization_id,
            Broadcast.id == broadcast_id,
            Broadcast.status.in_(allowed),
        )
        .values(**values, updated_at=now())
        .returning(Broadcast.id),
        execution_options={"synchronize_session": False},
    )
    broadcast = await BroadcastRepository(session, organization_id).get(broadcast_id)
    if changed is None:
        raise BroadcastStateConflict(
            f"Broadcast {broadcast_id} is {broadcast.status}; this needs it {' or '.join(allowed)}"
        )
    return broadcast


async def pause_broadcast(session: AsyncSession, *, organization_id: str, broadcast_id: str) -> BroadcastOut:
    """Stop queueing; messages already queued wait (unsent) until it is resumed."""
    broadcast = await _change_status(
        session,
        organization_id=organization_id,
        broadcast_id=broadcast_id,
        allowed=("running",),
        values={"status": "paused", "paused_at": now(), "dispatch_job_id": None},
    )
    return await announce(session, broadcast, event_types.BROADCAST_PAUSED)


async def resume_broadcast(session: AsyncSession, *, organization_id: str, broadcast_id: str) -> BroadcastOut:
    """Go on from where it stopped: recipients already queued or skipped are never visited again."""
    broadcast = await _change_status(
        session,
        organization_id=organization_id,
        broadcast_id=broadcast_id,
        allowed=("paused",),
        values={"status": "running", "paused_at": None, "status_reason": None},
    )
    _start_dispatch(session, broadcast)
    await _send_held_messages(session, broadcast)
    return await announce(session, broadcast, event_types.BROADCAST_RESUMED)


async def _send_held_messages(session: AsyncSession, broadcast: Broadcast) -> None:
    """Queue again the sends that found the broadcast paused and stood down (a few seconds' worth).

    One whose first job hasn't run yet gets a second: harmless, only one job can hand a message over.
    """
    held = await session.scalars(
        select(Message.id).where(
            Message.organization_id == broadcast.organization_id,
            Message.broadcast_id == broadcast.id,
            Message.status == "queued",
            Message.dispatched_at.is_(None),
        )
    )
    for message_id in held:
        enqueue(session, kind=SEND_JOB, payload={"messageId": message_id}, organization_id=broadcast.organization_id)


async def cancel_broadcast(session: AsyncSession, *, organization_id: str, broadcast_id: str) -> BroadcastOut:
    """Stop for good: recipients not reached yet are `cancelled`; what already left WhatsApp stays sent."""
    broadcast = await _change_status(
        session,
        organization_id=organization_id,
        broadcast_id=broadcast_id,
        allowed=("scheduled", "running", "paused"),
        values={"status": "cancelled", "cancelled_at": now(), "dispatch_job_id": None},
    )
    await stop_broadcast(session, broadcast, reason=None)
    return await announce(session, broadcast, event_types.BROADCAST_CANCELLED)


async def stop_broadcast(session: AsyncSession, broadcast: Broadcast, *, reason: str | None) -> None:
    """Cancel `broadcast`: its pending recipients and its messages that have not left yet are cancelled."""
    moment = broadcast.cancelled_at or now()
    broadcast.status = "cancelled"
    broadcast.cancelled_at = moment
    broadcast.dispatch_job_id = None
    broadcast.status_reason = reason
    recipients = BroadcastRecipient.organization_id == broadcast.organization_id
    await session.execute(
        update(BroadcastRecipient)
        .where(recipients, BroadcastRecipient.broadcast_id == broadcast.id, BroadcastRecipient.status == "pending")
        .values(status="cancelled")
    )
    # Only messages no worker has handed to WhatsApp: one being sent right now goes out and counts.
    # FOR UPDATE makes a send that took its message first win (PostgreSQL then re-reads the row).
    unsent = list(
        await session.scalars(
            select(Message.id)
            .where(
                Message.organization_id == broadcast.organization_id,
                Message.broadcast_id == broadcast.id,
                Message.status == "queued",
                Message.dispatched_at.is_(None),
            )
            .with_for_update()
        )
    )
    for message_id in unsent:
        await advance_status(
            session,
            organization_id=broadcast.organization_id,
            message_id=message_id,
            status="failed",
            at=moment,
            error_message=CANCELLED_UNSENT,
            error_explanation="The broadcast was cancelled; this customer was not messaged.",
        )
    for start in range(0, len(unsent), 500):
        await session.execute(
            update(BroadcastRecipient)
            .where(
                recipients,
                BroadcastRecipient.broadcast_id == broadcast.id,
                BroadcastRecipient.message_id.in_(unsent[start : start + 500]),
            )
            .values(status="cancelled")
        )

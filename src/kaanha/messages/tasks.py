"""Background work of messages: handing a queued message to the organization's WhatsApp provider.

A send commits in three steps so that no crash can lose a message or send it twice:

1. in one transaction (holding the job's lease): checks, uploads and the request body, and the
   message marked `dispatched_at`, the moment it may reach WhatsApp;
2. the call to WhatsApp, outside any transaction;
3. in another transaction, WhatsApp's answer: `sent` with its id, a retry, or `failed`.

A message found with `dispatched_at` still set had its answer lost (a worker crash or a timeout
after the request left). It is never simply sent again: it waits for Meta's status webhook, which
names it by `biz_opaque_callback_data`; see `_in_doubt` and docs/decisions.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from kaanha.broadcasts.replies import skip_recipient
from kaanha.consent.service import marketing_block_reason, set_opt_in
from kaanha.contacts.repository import ContactRepository
from kaanha.kit.clock import now
from kaanha.messages.repository import MessageRepository
from kaanha.messages.service import SEND_JOB
from kaanha.messages.status import advance_status
from kaanha.models import Broadcast, Contact, InboundEvent, Job, Message, WhatsAppConnection
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.whatsapp.cloud_api.errors import ACCESS_TOKEN_INVALID, MARKETING_STOPPED
from kaanha.whatsapp.inbound import UNCONFIRMED
from kaanha.whatsapp.provider import Outbound, Paced, PreparedSend, ProviderError, WhatsAppProvider
from kaanha.whatsapp.providers import provider_for
from kaanha.worker.runner import Lease, RetryLater, backoff, stepwise_task

logger = logging.getLogger("kaanha.messages")

UNCONFIRMED_EXPLANATION = (
    "Kaanha lost WhatsApp's answer to this send and WhatsApp never confirmed it, so it may or may not "
    "have reached the customer. Check the conversation before sending it again."
)


# A number's send slots free up within a second; a paced job comes back that soon.
PACED_RETRY = timedelta(milliseconds=500)


class InDoubt(Enum):
    WAIT = "wait"
    RESEND = "resend"
    GIVE_UP = "give_up"


def _in_doubt(
    message: Message, connection: WhatsAppConnection, wait: timedelta, *, webhooks_unapplied: bool
) -> InDoubt:
    """What to do with a send whose answer was lost.

    Meta reports every message it accepts in a status webhook within seconds, naming our message in
    `biz_opaque_callback_data`. So: wait for it, and for every webhook already received to be applied;
    if the wait passes while other webhooks kept arriving, Meta never took the message and it is safe
    to send; if no webhook arrived at all, we can't tell, and a person decides (the message fails
    with an explanation).
    """
    dispatched_at = message.dispatched_at or now()
    if now() < dispatched_at + wait or webhooks_unapplied:
        return InDoubt.WAIT
    if connection.last_webhook_at is not None and connection.last_webhook_at > dispatched_at:
        return InDoubt.RESEND
    return InDoubt.GIVE_UP


async def _webhooks_unapplied(session: AsyncSession, organization_id: str, *, since: datetime) -> bool:
    """Whether a webhook received since the dispatch still waits to be processed (it may confirm it)."""
    waiting = await session.scalar(
        select(InboundEvent.id)
        .where(
            InboundEvent.organization_id == organization_id,
            InboundEvent.received_at >= since,
            InboundEvent.processed_at.is_(None),
        )
        .limit(1)
    )
    return waiting is not None


async def _fail(
    session: AsyncSession, message: Message, *, code: int | None, text: str, explanation: str | None
) -> None:
    await session.execute(
        update(Message).where(Message.id == message.id).values(dispatched_at=None),
        execution_options={"synchronize_session": False},
    )
    await advance_status(
        session,
        organization_id=message.organization_id,
        message_id=message.id,
        status="failed",
        at=now(),
        error_code=code,
        error_message=text,
        error_explanation=explanation,
    )


async def _outbound(
    session: AsyncSession, message: Message, connection: WhatsAppConnection, contact: Contact | None
) -> Outbound:
    messages = MessageRepository(session, message.organization_id)
    contact = contact or await ContactRepository(session, message.organization_id).get(message.contact_id)
    reply_to = await messages.find(message.reply_to_id) if message.reply_to_id else None
    return Outbound(
        message=message,
        contact=contact,
        connection=connection,
        reply_to_whatsapp_id=reply_to.whatsapp_message_id if reply_to else None,
    )


async def fail_abandoned_send(session: AsyncSession, _runtime: Runtime, job: Job, error: Exception) -> None:
    """The send job failed for good (a bug or an outage outlasting every retry): say so on the message."""
    organization_id = job.organization_id or ""
    message = await MessageRepository(session, organization_id).find(job.payload.get("messageId", ""))
    if message is None or message.status != "queued":
        return
    if message.dispatched_at is not None:
        # It may have reached WhatsApp: say exactly that, never "not sent".
        await _fail(session, message, code=None, text=UNCONFIRMED, explanation=UNCONFIRMED_EXPLANATION)
        return
    await _fail(
        session,
        message,
        code=None,
        text=f"Kaanha could not send this message: {error}"[:1000],
        explanation="Sending failed repeatedly inside Kaanha; send the message again.",
    )


@stepwise_task(SEND_JOB, on_give_up=fail_abandoned_send)
async def send_queued_message(runtime: Runtime, job: Job, lease: Lease) -> None:
    organization_id = job.organization_id or ""
    wait = timedelta(seconds=runtime.settings.cloud_api.unconfirmed_send_wait_seconds)
    async with runtime.database.transaction() as session:
        message = await MessageRepository(session, organization_id).find(job.payload["messageId"])
        if message is None or message.status != "queued":
            return  # deleted with its contact, confirmed by a webhook, or already handled
        if message.broadcast_id is not None and await _broadcast_paused(session, message):
            return  # it waits, unsent: resuming the broadcast queues its send again
        contact = await _marketing_contact(session, message)
        if message.dispatched_at is None and contact is not None and (refusal := marketing_block_reason(contact)):
            await lease.hold(session)
            await _withdraw(session, message, refusal)
            return
        connection = await get_connection(session, organization_id)
        if message.dispatched_at is not None:
            unapplied = await _webhooks_unapplied(session, organization_id, since=message.dispatched_at)
            verdict = _in_doubt(message, connection, wait, webhooks_unapplied=unapplied)
            if verdict is InDoubt.WAIT:
                delay = max(message.dispatched_at + wait - now(), timedelta(seconds=1))
                raise RetryLater("waiting for WhatsApp to confirm a send", delay=delay)
            if verdict is InDoubt.GIVE_UP:
                await lease.hold(session)
                await _fail(session, message, code=None, text=UNCONFIRMED, explanation=UNCONFIRMED_EXPLANATION)
                return
            logger.info("message %s was never accepted by WhatsApp; sending it again", message.id)
        provider = provider_for(connection, runtime, attempt=job.attempts)
        try:
            # Pacing and uploads come before anything is written: no lock is held while they wait.
            await provider.pace()
            prepared = await provider.prepare(session, await _outbound(session, message, connection, contact))
        except Paced as error:
            raise RetryLater(str(error), delay=PACED_RETRY, count_attempt=False) from error
        except ProviderError as error:
            if error.retryable:
                raise RetryLater(str(error), delay=error.retry_after) from error
            await lease.hold(session)
            await _fail(session, message, code=error.code, text=error.message, explanation=error.explanation)
            return
        await lease.hold(session)  # still ours, and now for a full lease, before Meta may get it
        if not await _hand_over(session, message):
            return  # cancelled or paused with its broadcast, or taken by another job, while we prepared it
    await _dispatch(runtime, job, message, provider, prepared)


async def _marketing_contact(session: AsyncSession, message: Message) -> Contact | None:
    """The contact of a marketing message, read now: the customer may have opted out since it was queued."""
    if message.content.get("category") != "MARKETING":
        return None
    return await ContactRepository(session, message.organization_id).get(message.contact_id)


async def _withdraw(session: AsyncSession, message: Message, reason: str) -> None:
    await _fail(
        session,
        message,
        code=None,
        text="Not sent: the contact is no longer opted in to marketing messages",
        explanation="The customer opted out after this marketing message was queued, so it was held back.",
    )
    if message.broadcast_id is not None:
        await skip_recipient(session, message=message, reason=reason)


async def _broadcast_paused(session: AsyncSession, message: Message) -> bool:
    status = await session.scalar(
        select(Broadcast.status).where(
            Broadcast.organization_id == message.organization_id, Broadcast.id == message.broadcast_id
        )
    )
    return status == "paused"


async def _hand_over(session: AsyncSession, message: Message) -> bool:
    """Mark the message as on its way to WhatsApp, unless something else moved it meanwhile.

    The condition is the state this job read: still `queued`, and `dispatched_at` as it was, so of two
    jobs for one message (a resumed broadcast queues sends again) only one ever hands it over.
    """
    moment = now()
    handed = update(Message).where(
        Message.id == message.id,
        Message.status == "queued",
        Message.dispatched_at.is_(None)
        if message.dispatched_at is None
        else Message.dispatched_at == message.dispatched_at,
    )
    if message.broadcast_id is not None:
        # Paused since the check above: it waits with the others.
        handed = handed.where(
            ~select(Broadcast.id).where(Broadcast.id == message.broadcast_id, Broadcast.status == "paused").exists()
        )
    marked = await session.execute(
        handed.values(dispatched_at=moment), execution_options={"synchronize_session": False}
    )
    # Known to this copy without making it dirty: a flush must not write it again unconditionally.
    set_committed_value(message, "dispatched_at", moment)
    return bool(marked.rowcount == 1)  # type: ignore[attr-defined]


async def _dispatch(
    runtime: Runtime, job: Job, message: Message, provider: WhatsAppProvider, prepared: PreparedSend
) -> None:
    try:
        result = await provider.dispatch(prepared)
    except ProviderError as error:
        async with runtime.database.transaction() as session:
            retry = await _record_refusal(session, runtime, job, message, error)
        if retry is not None:
            raise retry from error
        return
    async with runtime.database.transaction() as session:
        await _record_sent(session, message, result.whatsapp_message_id)


async def _record_sent(session: AsyncSession, message: Message, whatsapp_message_id: str) -> None:
    adopted = await session.execute(
        update(Message)
        .where(
            Message.id == message.id,
            or_(Message.whatsapp_message_id.is_(None), Message.whatsapp_message_id == whatsapp_message_id),
        )
        .values(whatsapp_message_id=whatsapp_message_id, dispatched_at=None),
        execution_options={"synchronize_session": False},
    )
    if adopted.rowcount != 1:  # type: ignore[attr-defined]
        logger.warning("message %s already has another WhatsApp id; %s is ignored", message.id, whatsapp_message_id)
        return
    await advance_status(
        session, organization_id=message.organization_id, message_id=message.id, status="sent", at=now()
    )
    # Meta should now report on this message; if nothing comes, webhooks have stopped reaching us.
    await session.execute(
        update(WhatsAppConnection)
        .where(
            WhatsAppConnection.organization_id == message.organization_id,
            WhatsAppConnection.type == "cloud_api",
            WhatsAppConnection.awaiting_webhook_since.is_(None),
        )
        .values(awaiting_webhook_since=now())
    )


async def _record_marketing_opt_out(session: AsyncSession, message: Message) -> None:
    """The customer stopped marketing on WhatsApp itself: record it, so broadcasts skip them from now on."""
    contact = await ContactRepository(session, message.organization_id).find(message.contact_id)
    if contact is not None:
        await set_opt_in(
            session, contact=contact, opted_in=False, source="whatsapp", detail="Meta error 131050 on a send"
        )


async def _record_refusal(
    session: AsyncSession, runtime: Runtime, job: Job, message: Message, error: ProviderError
) -> RetryLater | None:
    """Apply WhatsApp's refusal; return the retry to raise once this transaction has committed."""
    wait = timedelta(seconds=runtime.settings.cloud_api.unconfirmed_send_wait_seconds)
    if error.in_doubt:
        # Meta may have the message: keep `dispatched_at` and wait for its webhook before deciding.
        return RetryLater(f"{error}; waiting for WhatsApp to confirm", delay=wait)
    if error.retryable and job.attempts < runtime.settings.cloud_api.send_attempts:
        await session.execute(
            update(Message).where(Message.id == message.id).values(dispatched_at=None),
            execution_options={"synchronize_session": False},
        )
        return RetryLater(str(error), delay=error.retry_after or backoff(job.attempts))
    explanation = error.explanation
    if error.retryable:
        explanation = f"WhatsApp kept refusing it ({job.attempts} attempts): {explanation}"
    await _fail(session, message, code=error.code, text=error.message, explanation=explanation)
    if error.code == MARKETING_STOPPED:
        await _record_marketing_opt_out(session, message)
    if error.code == ACCESS_TOKEN_INVALID:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == message.organization_id)
            .values(connected=False, status_reason=f"Meta rejected the access token (190): {error.message}")
        )
    return None

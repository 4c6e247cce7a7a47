"""What happens to a broadcast recipient after its message is queued: a reply, or a send held back."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import BroadcastRecipient, Message

REPLY_WINDOW = timedelta(days=7)


async def note_reply(session: AsyncSession, *, organization_id: str, contact_id: str, at: datetime) -> None:
    """Mark the contact's broadcasts of the past week as replied: those whose message was sent before `at`."""
    sent_recently = select(Message.id).where(
        Message.organization_id == organization_id,
        Message.contact_id == contact_id,
        Message.broadcast_id.is_not(None),
        Message.sent_at <= at,
        Message.sent_at > at - REPLY_WINDOW,
    )
    await session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.organization_id == organization_id,
            BroadcastRecipient.contact_id == contact_id,
            BroadcastRecipient.status == "queued",
            BroadcastRecipient.replied_at.is_(None),
            BroadcastRecipient.message_id.in_(sent_recently),
        )
        .values(replied_at=at)
    )


async def skip_recipient(session: AsyncSession, *, message: Message, reason: str) -> None:
    """The recipient of `message` was held back after queueing (an opt-out meanwhile): skipped, with why."""
    await session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.organization_id == message.organization_id,
            BroadcastRecipient.broadcast_id == message.broadcast_id,
            BroadcastRecipient.message_id == message.id,
        )
        .values(status="skipped", skip_reason=reason)
    )

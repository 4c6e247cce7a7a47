"""Counting replies: a customer who writes within a week of a broadcast's message has replied to it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import BroadcastRecipient

REPLY_WINDOW = timedelta(days=7)


async def note_reply(session: AsyncSession, *, organization_id: str, contact_id: str, at: datetime) -> None:
    """Mark the contact's broadcasts of the past week as replied (the first reply counts, later ones don't)."""
    await session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.organization_id == organization_id,
            BroadcastRecipient.contact_id == contact_id,
            BroadcastRecipient.status == "queued",
            BroadcastRecipient.replied_at.is_(None),
            BroadcastRecipient.queued_at <= at,
            BroadcastRecipient.queued_at > at - REPLY_WINDOW,
        )
        .values(replied_at=at)
    )

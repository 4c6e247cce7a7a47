"""Delivery status that only moves forward, whatever order Meta's status webhooks arrive in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.events.service import emit
from kaanha.events.types import STATUS_EVENTS
from kaanha.messages.schemas import message_out
from kaanha.models import Message

# failed may follow sent or delivered (multi-device); read beats everything; received is inbound.
STATUS_RANK = {"queued": 0, "sent": 10, "delivered": 20, "failed": 25, "read": 30, "received": 40}
ERROR_MESSAGE_LIMIT = 1000  # the length of messages.error_message
# WhatsApp's `played` (a voice message listened to) is a read for our status model.
PROVIDER_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}


async def advance_status(
    session: AsyncSession,
    *,
    organization_id: str,
    whatsapp_message_id: str | None = None,
    message_id: str | None = None,
    status: str,
    at: datetime,
    error_code: int | None = None,
    error_message: str | None = None,
    error_explanation: str | None = None,
) -> bool:
    """Move a message to `status` unless it is already there or further; True when it moved.

    One conditional UPDATE: duplicates and out-of-order updates are harmless without locks. When it
    moved, the message as it now is comes back from that same statement (RETURNING) and its event
    (`message.sent`, `.delivered`, `.read`, `.failed`) joins the transaction; when it didn't, nothing.
    """
    rank = STATUS_RANK[status]
    values: dict[str, object] = {"status": status, "status_rank": rank}
    if status in ("sent", "delivered", "read"):
        values["sent_at"] = func.coalesce(Message.sent_at, at)
    if status in ("delivered", "read"):
        # A read implies a delivery even when Meta never reported it.
        values["delivered_at"] = func.coalesce(Message.delivered_at, at)
    if status == "read":
        values["read_at"] = func.coalesce(Message.read_at, at)
    if status == "failed":
        # Meta's error details have no length limit; the column has (PostgreSQL refuses longer text).
        message = error_message[:ERROR_MESSAGE_LIMIT] if error_message else error_message
        values.update(
            failed_at=at,
            error_code=error_code,
            error_message=message,
            error_explanation=error_explanation[:500] if error_explanation else None,
        )
    query = update(Message).where(Message.organization_id == organization_id, Message.status_rank < rank)
    if message_id is not None:
        query = query.where(Message.id == message_id)
    elif whatsapp_message_id is not None:
        query = query.where(Message.whatsapp_message_id == whatsapp_message_id)
    else:
        raise ValueError("advance_status needs a message id or a WhatsApp message id")
    result = await session.execute(
        query.values(**values).returning(*Message.__table__.columns),
        execution_options={"synchronize_session": False},
    )
    row = result.first()
    if row is None:
        return False
    event_type = STATUS_EVENTS.get(status)
    if event_type is not None:
        # A detached copy of the row as updated: a copy in the session (maybe holding unflushed
        # changes, as sessions don't autoflush) is left alone, as it was before events existed.
        moved = Message(**row._mapping)
        await emit(session, organization_id=organization_id, type=event_type, data=message_out(moved))
    return True

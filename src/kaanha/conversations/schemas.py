"""Public shapes of conversations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kaanha.contacts.schemas import ContactOut
from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.messages.schemas import MessageOut

ConversationStatus = Literal["OPEN", "ASSIGNED", "RESOLVED"]


class ConversationOut(Schema):
    id: str
    contact: ContactOut
    status: ConversationStatus
    assignee_id: str | None
    unread_count: int
    last_message_at: Timestamp | None
    window_expires_at: Timestamp | None = Field(
        description="When the 24-hour customer service window closes; null if the contact never wrote"
    )
    window_open: bool
    created_at: Timestamp
    resolved_at: Timestamp | None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut] = Field(description="The most recent messages first, up to 50")


class ConversationUpdate(RequestSchema):
    """Set `assigneeId` to assign (status becomes ASSIGNED), null to unassign; or set `status`."""

    status: ConversationStatus | None = None
    assignee_id: str | None = None

"""Public shapes of conversations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kaanha.contacts.schemas import ContactOut
from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.messages.schemas import MessageOut

ConversationStatus = Literal["OPEN", "ASSIGNED", "RESOLVED"]


class ConversationHandoff(Schema):
    """Why an AI agent handed the conversation to people: shown while it is OPEN and nobody is assigned."""

    agent_id: str
    agent_name: str | None = Field(description="The agent's name when it handed over")
    reason: str = Field(
        description="keyword, max_replies, low_confidence, provider_error, unsupported_message, window_closed "
        "or send_failed"
    )
    note: str = Field(description="What happened, in words, for the person who takes over")
    at: Timestamp


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
    handoff: ConversationHandoff | None = Field(
        default=None, description="Set while the conversation waits for people after an AI agent handed it over"
    )


class ConversationDetail(ConversationOut):
    messages: list[MessageOut] = Field(description="The most recent messages first, up to 50")


class ConversationUpdate(RequestSchema):
    """Set `assigneeId` to assign (status becomes ASSIGNED), null to unassign; or set `status`."""

    status: ConversationStatus | None = None
    assignee_id: str | None = None

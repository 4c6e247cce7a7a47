"""Public shapes of messages and of `POST /send`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.models import Message

MessageType = Literal[
    "text",
    "image",
    "document",
    "audio",
    "video",
    "template",
    "interactive",
    "location",
    "contact",
    "reaction",
]
MessageStatus = Literal["queued", "sent", "delivered", "read", "failed", "received"]


class MessageError(Schema):
    code: int | None
    message: str
    # What to do about it, in plain words (Meta's `message` says what happened).
    explanation: str | None = None


class MessageOut(Schema):
    id: str
    conversation_id: str
    contact_id: str
    direction: Literal["inbound", "outbound"]
    type: str
    status: MessageStatus
    content: dict[str, Any]
    whatsapp_message_id: str | None
    reply_to: str | None
    error: MessageError | None
    created_at: Timestamp
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    # The AI agent that wrote it (null for people, programs and customers).
    ai_agent_id: str | None = None


def message_out(message: Message) -> MessageOut:
    error = None
    if message.error_code is not None or message.error_message:
        error = MessageError(
            code=message.error_code, message=message.error_message or "", explanation=message.error_explanation
        )
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        contact_id=message.contact_id,
        direction=message.direction,
        type=message.type,
        status=message.status,
        content=message.content or {},
        whatsapp_message_id=message.whatsapp_message_id,
        reply_to=message.reply_to_id,
        error=error,
        created_at=message.created_at,
        sent_at=message.sent_at,
        delivered_at=message.delivered_at,
        read_at=message.read_at,
        ai_agent_id=message.ai_agent_id,
    )


class SendRequest(RequestSchema):
    """`POST /send`: `to`, `type` and the fields of that type (see the reference's table)."""

    # What a customer reads is sent as written: leading spaces and trailing newlines are content.
    model_config = ConfigDict(**{**RequestSchema.model_config, "str_strip_whitespace": False})

    to: str = Field(min_length=1, max_length=32, description="The recipient's phone, E.164 preferred")
    type: MessageType
    reply_to: str | None = Field(default=None, max_length=200, description="Id of the message to quote")
    text: str | None = Field(default=None, description="text: up to 4,096 characters")
    preview_url: bool | None = Field(default=None, description="text: show a preview of the first URL")
    media_url: str | None = Field(default=None, max_length=2048, description="image/document/audio/video")
    media_id: str | None = Field(default=None, max_length=64, description="image/document/audio/video")
    caption: str | None = Field(default=None, description="image/document/video: up to 1,024 characters")
    filename: str | None = Field(default=None, max_length=240, description="document")
    template_name: str | None = Field(default=None, max_length=512, description="template")
    language: str | None = Field(default=None, max_length=15, description="template: e.g. en_US")
    components: list[dict[str, Any]] | None = Field(default=None, description="template parameters")
    interactive: dict[str, Any] | None = Field(default=None, description="interactive: button, list or cta_url")
    latitude: float | None = Field(default=None, description="location")
    longitude: float | None = Field(default=None, description="location")
    name: str | None = Field(default=None, max_length=1000, description="location")
    address: str | None = Field(default=None, max_length=1000, description="location")
    contacts: list[dict[str, Any]] | None = Field(default=None, description="contact: WhatsApp contact cards")
    message_id: str | None = Field(default=None, max_length=200, description="reaction: the message reacted to")
    emoji: str | None = Field(default=None, max_length=16, description="reaction: empty to remove")
    quick_reply: str | None = Field(
        default=None,
        min_length=1,
        max_length=33,
        description="Instead of `type` and its fields: a quick reply's shortcut ('thanks' or '/thanks'), "
        "sent filled in for the contact",
    )

    @model_validator(mode="before")
    @classmethod
    def _quick_reply_decides_the_type(cls, data: Any) -> Any:
        # The saved reply decides the type (text, or its media's); "text" stands in until it is read.
        if isinstance(data, dict) and data.get("quickReply", data.get("quick_reply")) is not None:
            if "type" in data:
                raise ValueError("'quickReply' replaces 'type' and its fields: send one or the other")
            return {**data, "type": "text"}
        return data

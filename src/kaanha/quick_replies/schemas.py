"""Public shapes of quick replies."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.models import QuickReply

SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
TEXT_LIMIT = 4096


def normalize_shortcut(value: str) -> str:
    """`/Thanks` and `thanks` name the same quick reply: people type the slash, we store without it."""
    return value.strip().removeprefix("/").lower()


def _check_shortcut(value: str | None) -> str | None:
    if value is None:
        return None
    shortcut = normalize_shortcut(value)
    if not SHORTCUT.match(shortcut):
        raise ValueError(
            "a shortcut is 1 to 32 letters, digits, '-' or '_', starting with a letter or digit (e.g. 'thanks')"
        )
    return shortcut


class QuickReplyOut(Schema):
    id: str
    shortcut: str
    text: str
    media_id: str | None
    # The message type it is sent as: text, or the media's type (image, video, audio, document).
    type: str
    created_at: Timestamp
    updated_at: Timestamp


def quick_reply_out(quick_reply: QuickReply, *, message_type: str) -> QuickReplyOut:
    return QuickReplyOut(
        id=quick_reply.id,
        shortcut=quick_reply.shortcut,
        text=quick_reply.text,
        media_id=quick_reply.media_id,
        type=message_type,
        created_at=quick_reply.created_at,
        updated_at=quick_reply.updated_at,
    )


class QuickReplyCreate(RequestSchema):
    shortcut: str = Field(min_length=1, max_length=33, examples=["thanks"])
    text: str = Field(
        default="",
        max_length=TEXT_LIMIT,
        description="May use contact fields with fallbacks: 'Thanks, {{contact.name|there}}!'. "
        "The caption when there is media (up to 1,024 characters).",
    )
    media_id: str | None = Field(default=None, max_length=64, description="An uploaded image, video, audio or document")

    _shortcut = field_validator("shortcut")(_check_shortcut)


class QuickReplyUpdate(RequestSchema):
    """Only the fields present change; `mediaId: null` removes the media."""

    shortcut: str | None = Field(default=None, min_length=1, max_length=33)
    text: str | None = Field(default=None, max_length=TEXT_LIMIT)
    media_id: str | None = Field(default=None, max_length=64)

    _shortcut = field_validator("shortcut")(_check_shortcut)

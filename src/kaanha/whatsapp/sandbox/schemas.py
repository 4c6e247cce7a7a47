"""Public shape of a simulated customer message."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from kaanha.kit.schemas import RequestSchema

InboundType = Literal["text", "image", "document", "audio", "video", "location", "reaction", "button_reply"]


class SandboxInbound(RequestSchema):
    """A message as a customer would send it; media refer to files uploaded with POST /media."""

    model_config = ConfigDict(**{**RequestSchema.model_config, "str_strip_whitespace": False})

    from_: str = Field(alias="from", min_length=1, max_length=32, description="The customer's phone")
    name: str | None = Field(default=None, max_length=200, description="The customer's WhatsApp profile name")
    type: InboundType = "text"
    text: str | None = Field(default=None, max_length=4096)
    media_id: str | None = Field(default=None, max_length=64)
    caption: str | None = Field(default=None, max_length=1024)
    filename: str | None = Field(default=None, max_length=240)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=1000)
    message_id: str | None = Field(default=None, max_length=200, description="reaction: our message id")
    emoji: str | None = Field(default=None, max_length=16)
    button_id: str | None = Field(default=None, max_length=256)
    button_title: str | None = Field(default=None, max_length=20)
    reply_to: str | None = Field(default=None, max_length=200, description="Quote one of our messages")

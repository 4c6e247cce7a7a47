"""Public shapes of broadcasts and their recipients."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field, model_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp

BroadcastStatus = Literal["scheduled", "running", "paused", "completed", "cancelled"]
RecipientStatus = Literal["pending", "queued", "sent", "delivered", "read", "failed", "skipped", "cancelled"]
# Recipients can also be listed by whether they replied.
RecipientFilter = Literal[RecipientStatus, "replied"]
MAX_AUDIENCE_TAGS = 20
MAX_AUDIENCE_CONTACT_IDS = 10_000


class Audience(RequestSchema):
    """Who receives it: contacts with any of `tags`, the contacts listed, or (`all`) every opted-in contact."""

    tags: list[str] | None = Field(default=None, max_length=MAX_AUDIENCE_TAGS)
    contact_ids: list[str] | None = Field(default=None, max_length=MAX_AUDIENCE_CONTACT_IDS)
    all: bool | None = None

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> Audience:
        if self.all:
            if self.tags or self.contact_ids:
                raise ValueError("audience.all can't be combined with tags or contactIds")
        elif not self.tags and not self.contact_ids:
            raise ValueError("audience needs tags, contactIds, or all: true")
        for tag in self.tags or []:
            if not tag or len(tag) > 64:
                raise ValueError("audience tags are 1 to 64 characters")
        for contact_id in self.contact_ids or []:
            if not contact_id or len(contact_id) > 40:
                raise ValueError("audience contactIds must be contact ids")
        return self


class BroadcastCreate(RequestSchema):
    name: str = Field(min_length=1, max_length=200)
    template_name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=15)
    components: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=20,
        description="Template parameters as in POST /send; texts may use {{contact.name|fallback}}",
    )
    audience: Audience
    # With a time zone (Z or an offset): a bare local time could mean any moment of the day.
    scheduled_at: AwareDatetime | None = Field(default=None, description="When to start; omitted: now")


class BroadcastCounts(Schema):
    total: int
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    skipped: int
    cancelled: int
    replied: int


class BroadcastOut(Schema):
    id: str
    name: str
    template_name: str
    language: str
    category: str
    components: list[dict[str, Any]]
    audience: dict[str, Any]
    status: BroadcastStatus
    counts: BroadcastCounts
    skipped_by_reason: dict[str, int]
    # Share of the audience done with (sent, failed, skipped or cancelled), 0..1: the progress bar.
    progress: float
    status_reason: str | None
    scheduled_at: Timestamp | None
    started_at: Timestamp | None
    paused_at: Timestamp | None
    completed_at: Timestamp | None
    cancelled_at: Timestamp | None
    created_at: Timestamp


class RecipientOut(Schema):
    contact_id: str
    phone: str
    name: str | None
    status: RecipientStatus
    skip_reason: str | None
    message_id: str | None
    error: dict[str, Any] | None
    queued_at: Timestamp | None
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    replied_at: Timestamp | None


class AudienceCount(Schema):
    count: int
    # The plan's most contacts per broadcast; null when unlimited.
    plan_limit: int | None

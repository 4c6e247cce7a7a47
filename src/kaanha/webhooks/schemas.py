"""Public shapes of webhook endpoints, their secrets and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from kaanha.events.types import EVENT_TYPES, PING
from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.models import WebhookAttempt, WebhookEndpoint

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
ALL_EVENTS = "*"
# Every known type once, plus "*": a longer list can only repeat itself.
MAX_EVENTS_LISTED = len(EVENT_TYPES) + 1
# An error names at most this many unknown types, each cut short, so a huge body can't make a huge answer.
_UNKNOWN_NAMED = 5
_UNKNOWN_SHOWN_CHARS = 64


class WebhookEndpointOut(Schema):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    # Set when we turned the endpoint off after it failed for three days; cleared by re-enabling it.
    disabled_at: Timestamp | None
    disabled_reason: str | None
    failing_since: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


def endpoint_out(endpoint: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(endpoint)


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="The signing secret (Standard Webhooks `whsec_...`), shown only in this response")


class WebhookSecretRotated(WebhookEndpointOut):
    secret: str = Field(description="The new signing secret, shown only in this response")
    previous_secret_expires_at: Timestamp = Field(
        description="Until then every delivery is also signed with the secret this one replaced"
    )


def _check_url(value: str | None) -> str | None:
    """http(s) with a host, nothing a client or a log line could misread; the address rules come later."""
    if value is None:
        return None
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(character.isspace() or not character.isprintable() for character in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that isn't one)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, such as https://example.com/webhooks")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    return value


def _check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError(f'give at least one event type, or ["{ALL_EVENTS}"] for all of them')
    unknown = [event for event in dict.fromkeys(value) if event != ALL_EVENTS and event not in EVENT_TYPES]
    if unknown:
        named = ", ".join(repr(event[:_UNKNOWN_SHOWN_CHARS]) for event in unknown[:_UNKNOWN_NAMED])
        more = f" and {len(unknown) - _UNKNOWN_NAMED} more" if len(unknown) > _UNKNOWN_NAMED else ""
        label = "unknown event type" if len(unknown) == 1 else "unknown event types"
        raise ValueError(
            f"{label} {named}{more}; the known types are {', '.join(EVENT_TYPES)}, or {ALL_EVENTS!r} for all"
        )
    if ALL_EVENTS in value:
        return [ALL_EVENTS]
    return list(dict.fromkeys(value))


def _check_description(value: str | None) -> str | None:
    return value or None


class WebhookEndpointCreate(RequestSchema):
    url: str = Field(
        min_length=1,
        description="Where events are POSTed: http(s), public (private and loopback addresses are refused)",
        examples=["https://example.com/webhooks/kaanha"],
    )
    events: list[str] = Field(
        max_length=MAX_EVENTS_LISTED,
        description=f'Event types to receive, or ["{ALL_EVENTS}"] for all',
        examples=[["message.received", "message.delivered"]],
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool = True

    _url = field_validator("url")(_check_url)
    _events = field_validator("events")(_check_events)
    _description = field_validator("description")(_check_description)


class WebhookEndpointUpdate(RequestSchema):
    """Only the fields present change. Enabling an endpoint we disabled clears its failure record."""

    url: str | None = Field(default=None, min_length=1)
    events: list[str] | None = Field(default=None, max_length=MAX_EVENTS_LISTED)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    enabled: bool | None = None

    _url = field_validator("url")(_check_url)
    _events = field_validator("events")(_check_events)
    _description = field_validator("description")(_check_description)


AttemptStatus = Literal["succeeded", "failed"]
# What the delivery as a whole is doing: retried on schedule (pending), done, or given up.
DeliveryStatus = Literal["pending", "succeeded", "failed"]
FILTERABLE_EVENT_TYPES = (*EVENT_TYPES, PING)


class WebhookAttemptOut(Schema):
    """One POST of an event to the endpoint, what came of it, and where its delivery stands now."""

    id: str
    delivery_id: str
    event_id: str
    event_type: str
    attempt: int
    success: bool = Field(description="True when the endpoint answered 2xx within 10 seconds")
    status_code: int | None = Field(description="The endpoint's HTTP status; null when none came")
    duration_ms: int | None
    response_excerpt: str | None = Field(description="The start of the endpoint's answer")
    error: str | None = Field(
        description="Why the attempt failed when no status code says it: a timeout, a refused address..."
    )
    trigger: str = Field(description="`schedule` for the automatic attempts, `manual` for a retry or a test")
    created_at: Timestamp
    delivery_status: DeliveryStatus
    next_attempt_at: Timestamp | None = Field(description="When the next automatic attempt is due, if any")


def delivery_status(status: str) -> DeliveryStatus:
    """A delivery being attempted right now is still pending to the client."""
    if status == "succeeded":
        return "succeeded"
    if status == "failed":
        return "failed"
    return "pending"


def attempt_out(attempt: WebhookAttempt, *, status: str, next_attempt_at: datetime | None) -> WebhookAttemptOut:
    pending = delivery_status(status) == "pending"
    return WebhookAttemptOut(
        id=attempt.id,
        delivery_id=attempt.delivery_id,
        event_id=attempt.event_id,
        event_type=attempt.event_type,
        attempt=attempt.attempt,
        success=attempt.succeeded,
        status_code=attempt.status_code,
        duration_ms=attempt.duration_ms,
        response_excerpt=attempt.response_excerpt,
        error=attempt.error,
        trigger=attempt.trigger,
        created_at=attempt.created_at,
        delivery_status=delivery_status(status),
        next_attempt_at=next_attempt_at if pending else None,
    )

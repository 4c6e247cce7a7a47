"""The records the fake keeps: numbers, templates, media, accepted sends, webhook attempts and counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Injected faults that still process the send but answer late (see FakeGraphAPI.timeout_next and slow_rate).
TIMEOUT = "timeout"
SLOW = "slow"


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A business phone number registered on the fake, with the WABA its webhooks are filed under."""

    id: str
    display_phone_number: str
    verified_name: str
    waba_id: str

    def metadata(self) -> dict[str, str]:
        """The `metadata` object of a webhook `value`, which receivers use to route to a number."""
        return {"display_phone_number": self.display_phone_number, "phone_number_id": self.id}


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """A template's content as created; `body_params`/`header_params` are its placeholders, in order.

    `header_format` is the HEADER component's format (TEXT, IMAGE, ...) or None without a header. The three are
    derived once at creation, so a template send checks its parameters without parsing the text again.
    """

    name: str
    language: str
    category: str
    components: list[dict[str, Any]]
    parameter_format: str
    body_params: list[str]
    header_params: list[str]
    header_format: str | None


@dataclass(slots=True)
class Template:
    """A message template of a WABA: its content, id and review status (PENDING until approved)."""

    id: str
    waba_id: str
    spec: TemplateSpec
    status: str

    def to_graph(self) -> dict[str, Any]:
        """The item of `GET /{waba}/message_templates` `data[]`."""
        return {
            "name": self.spec.name,
            "parameter_format": self.spec.parameter_format,
            "components": self.spec.components,
            "language": self.spec.language,
            "status": self.status,
            "category": self.spec.category,
            "id": self.id,
        }


@dataclass(frozen=True, slots=True)
class MediaItem:
    """Uploaded (or customer-sent) media; `sha256` is hex as `GET /{media-id}` returns it."""

    id: str
    data: bytes
    mime_type: str
    sha256: str
    phone_number_id: str | None = None

    @property
    def file_size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A send the fake accepted (HTTP 200, or accepted and then answered late): what our code asked for."""

    wamid: str
    phone_number_id: str
    to: str
    type: str
    body: dict[str, Any]
    biz_opaque_callback_data: str | None
    accepted_at: float

    def to_json(self) -> dict[str, Any]:
        """A plain dict for `GET /_fake/sent`."""
        return {
            "wamid": self.wamid,
            "phone_number_id": self.phone_number_id,
            "to": self.to,
            "type": self.type,
            "body": self.body,
            "biz_opaque_callback_data": self.biz_opaque_callback_data,
            "accepted_at": self.accepted_at,
        }


class WebhookDelivery(NamedTuple):
    """One POST attempt to the callback: its HTTP status, or the connection error as text, and the payload."""

    outcome: int | str
    payload: dict[str, Any]


@dataclass(slots=True)
class FakeStats:
    """Counters for benchmarks and the demo; only the fake's event loop writes them."""

    requests: int = 0
    sends: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    read_receipts: int = 0
    timeouts: int = 0
    slow: int = 0
    webhook_posts: int = 0
    webhook_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counters; `refused` is keyed by the Graph error code as a string."""
        return {
            "requests": self.requests,
            "sends": self.sends,
            "accepted": self.accepted,
            "refused": {str(code): count for code, count in sorted(self.refused.items())},
            "read_receipts": self.read_receipts,
            "timeouts": self.timeouts,
            "slow": self.slow,
            "webhook_posts": self.webhook_posts,
            "webhook_failures": self.webhook_failures,
        }

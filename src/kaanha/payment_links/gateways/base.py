"""The gateway interface, what passes through it, and the errors a gateway call can end in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from kaanha.errors import InvalidRequest, KaanhaError, Unauthorized
from kaanha.runtime import Runtime

Outcome = Literal["paid", "expired", "cancelled"]


class PaymentGatewayError(KaanhaError):
    """The gateway refused or failed a call we could not check for beforehand; nothing was stored."""

    status_code = 502
    code = "payment_gateway_error"


class PaymentGatewayCredentialsRejected(InvalidRequest):
    code = "payment_gateway_credentials_rejected"


class InvalidExpiry(InvalidRequest):
    code = "invalid_expiry"


class InvalidWebhookSignature(Unauthorized):
    code = "invalid_signature"


class InvalidWebhookBody(InvalidRequest):
    code = "invalid_webhook_body"


@dataclass(frozen=True)
class Credentials:
    key_id: str | None
    key_secret: str


@dataclass(frozen=True)
class LinkRequest:
    """What a gateway needs to make a link: our id travels with it so its webhooks can name the link."""

    link_id: str
    amount: int
    currency: str
    description: str
    reference: str | None
    expires_at: datetime | None
    customer_phone: str | None
    customer_name: str | None
    # Our hosted page for the link (/pay/{id}): UPI's link itself, where the others return the customer.
    page_url: str


@dataclass(frozen=True)
class GatewayLink:
    gateway_link_id: str | None
    url: str
    expires_at: datetime | None


@dataclass(frozen=True)
class WebhookUpdate:
    """A gateway's webhook reduced to what we act on; `outcome` None means an event we only acknowledge."""

    event_id: str
    event_type: str
    gateway_link_id: str | None
    link_id: str | None
    outcome: Outcome | None
    # What the customer paid, as the gateway reports it (minor units, ISO code): checked against the link.
    amount_paid: int | None = None
    currency: str | None = None
    # Why an event that changes nothing is still worth a line in the log (a delayed payment that failed).
    note: str | None = None


class PaymentGateway(Protocol):
    name: str

    def check_expiry(self, expires_at: datetime | None, *, at: datetime) -> datetime | None:
        """The expiry the link will have (the gateway's default when None), or InvalidExpiry."""
        ...

    async def create_link(self, request: LinkRequest) -> GatewayLink: ...

    async def cancel_link(self, gateway_link_id: str | None) -> None: ...


def timeout(runtime: Runtime) -> httpx.Timeout:
    payments = runtime.settings.payments
    return httpx.Timeout(payments.request_timeout_seconds, connect=payments.connect_timeout_seconds)


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def parse_webhook_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidWebhookBody("The webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidWebhookBody("The webhook body is not a JSON object")
    return payload


def unix(moment: datetime) -> int:
    return int(moment.timestamp())

"""Stripe Checkout Sessions as payment links (form-encoded, Bearer secret key) and Stripe's signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kaanha.kit.clock import now
from kaanha.payment_links.gateways.base import (
    Credentials,
    GatewayLink,
    InvalidExpiry,
    InvalidWebhookSignature,
    LinkRequest,
    Outcome,
    PaymentGatewayCredentialsRejected,
    PaymentGatewayError,
    WebhookUpdate,
    json_object,
    timeout,
    unix,
)
from kaanha.runtime import Runtime

logger = logging.getLogger("kaanha.payment_links")

# Stripe: "expires_at ... must be between 30 minutes and 24 hours after the current time"; 24 h is its default.
MIN_EXPIRY = timedelta(minutes=30)
MAX_EXPIRY = timedelta(hours=24)
WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
]


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """Stripe's v1 scheme: hex HMAC-SHA256 of "{t}.{raw body}" with the endpoint's whsec_ secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_webhook(body: bytes, headers: dict[str, str], secret: str, *, tolerance_seconds: int) -> None:
    header = headers.get("stripe-signature")
    if not header:
        raise InvalidWebhookSignature("Missing Stripe-Signature header")
    timestamp: int | None = None
    given: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            given.append(value)
    if timestamp is None or not given:
        raise InvalidWebhookSignature("Stripe-Signature needs t= and v1= values")
    # The timestamp is signed, so an old delivery can't be replayed with a new time (Stripe's 5-minute default).
    if abs(now().timestamp() - timestamp) > tolerance_seconds:
        raise InvalidWebhookSignature(
            f"Stripe-Signature's timestamp is more than {tolerance_seconds} seconds from now: a replay, or a clock off"
        )
    expected = signature(body, secret, timestamp).encode()
    # Stripe sends one v1 per active secret while a secret is being rolled; any one may match.
    if not any(hmac.compare_digest(value.encode(), expected) for value in given):
        raise InvalidWebhookSignature("Stripe-Signature does not match the webhook secret in the payment settings")


def _outcome(event_type: str, session: dict[str, Any]) -> Outcome | None:
    if event_type == "checkout.session.completed":
        # A delayed method (a bank debit) completes the session unpaid; async_payment_succeeded or
        # async_payment_failed follows days later.
        return "paid" if session.get("payment_status") == "paid" else None
    if event_type == "checkout.session.async_payment_succeeded":
        return "paid"
    if event_type == "checkout.session.expired":
        return "expired"
    # async_payment_failed ends nothing: no money moved, and the link stays `created` until its expiry
    # (docs/decisions.md); the organization can send the customer a new link meanwhile.
    return None


def _note(event_type: str, session: dict[str, Any]) -> str | None:
    if event_type == "checkout.session.async_payment_failed":
        return "the customer's delayed payment (a bank debit) failed; the link stays created"
    if event_type == "checkout.session.completed" and session.get("payment_status") != "paid":
        return "completed with a delayed payment method; paid when Stripe confirms the money"
    return None


def parse_webhook(payload: dict[str, Any]) -> WebhookUpdate:
    event_type = str(payload.get("type") or "")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    session: Any = (data or {}).get("object") or {}
    if not isinstance(session, dict):
        session = {}
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    link_id = (metadata or {}).get("kaanha_link_id") or session.get("client_reference_id")
    is_session = session.get("object") == "checkout.session"
    return WebhookUpdate(
        event_id=str(payload.get("id") or "")[:255],
        event_type=event_type[:100],
        gateway_link_id=str(session["id"]) if is_session and session.get("id") else None,
        link_id=str(link_id) if link_id else None,
        outcome=_outcome(event_type, session) if is_session else None,
        amount_paid=_integer(session.get("amount_total")),
        currency=str(session["currency"]).upper() if session.get("currency") else None,
        note=_note(event_type, session) if is_session else None,
    )


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StripeGateway:
    name = "stripe"

    def __init__(self, runtime: Runtime, credentials: Credentials) -> None:
        self.runtime = runtime
        self.credentials = credentials
        self.base_url = runtime.settings.payments.stripe_api_url.rstrip("/")

    def check_expiry(self, expires_at: datetime | None, *, at: datetime) -> datetime | None:
        if expires_at is None:
            # Stripe's default, made explicit so the link shows when it ends.
            return at + MAX_EXPIRY
        if not at + MIN_EXPIRY <= expires_at <= at + MAX_EXPIRY:
            raise InvalidExpiry(
                "expiresAt: Stripe Checkout links expire between 30 minutes and 24 hours after they are created; "
                "leave it out for 24 hours"
            )
        return expires_at

    async def create_link(self, request: LinkRequest) -> GatewayLink:
        form: dict[str, str] = {
            "mode": "payment",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount),
            "line_items[0][price_data][product_data][name]": request.description,
            "line_items[0][quantity]": "1",
            "client_reference_id": request.link_id,
            "metadata[kaanha_link_id]": request.link_id,
            "success_url": request.page_url,
        }
        if request.reference:
            form["metadata[reference]"] = request.reference
        if request.expires_at is not None:
            form["expires_at"] = str(unix(request.expires_at))
        # Our link id as Stripe's Idempotency-Key: a retried create can't make a second session.
        answer = await self._call("POST", "/v1/checkout/sessions", form=form, idempotency_key=request.link_id)
        expires = answer.get("expires_at")
        return GatewayLink(
            gateway_link_id=str(answer.get("id") or ""),
            url=str(answer.get("url") or ""),
            expires_at=datetime.fromtimestamp(int(expires), UTC) if isinstance(expires, int) else request.expires_at,
        )

    async def cancel_link(self, gateway_link_id: str | None) -> None:
        if gateway_link_id:
            await self._call("POST", f"/v1/checkout/sessions/{gateway_link_id}/expire")

    async def _call(
        self, method: str, path: str, *, form: dict[str, str] | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.credentials.key_secret}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self.runtime.http.request(
                method, f"{self.base_url}{path}", data=form, headers=headers, timeout=timeout(self.runtime)
            )
        except httpx.HTTPError as error:
            raise PaymentGatewayError(
                f"Could not reach Stripe ({type(error).__name__}); nothing was changed, retry"
            ) from None
        body = json_object(response)
        if response.is_success:
            return body
        details: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        words = str(details.get("message") or response.reason_phrase or "no reason given")
        if response.status_code == 401:
            raise PaymentGatewayCredentialsRejected(
                f"Stripe rejected the secret key ({words}): fix it with PUT /payment-settings"
            )
        logger.info("stripe %s %s answered %s: %s", method, path, response.status_code, words)
        raise PaymentGatewayError(f"Stripe refused it ({response.status_code}): {words}")

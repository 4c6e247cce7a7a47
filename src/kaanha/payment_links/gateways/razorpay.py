"""Razorpay Payment Links (POST /v1/payment_links with HTTP basic auth) and Razorpay's signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kaanha.kit.crypto import sha256_hex
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

# Razorpay refuses `expire_by` less than 15 minutes ahead; links last at most six months.
MIN_EXPIRY = timedelta(minutes=15)
MAX_EXPIRY = timedelta(days=180)
OUTCOMES: dict[str, Outcome] = {
    "payment_link.paid": "paid",
    "payment_link.expired": "expired",
    "payment_link.cancelled": "cancelled",
}
WEBHOOK_EVENTS = list(OUTCOMES)


def signature(body: bytes, secret: str) -> str:
    """Razorpay's X-Razorpay-Signature: hex HMAC-SHA256 of the raw body with the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook(body: bytes, headers: dict[str, str], secret: str) -> None:
    given = headers.get("x-razorpay-signature")
    if not given:
        raise InvalidWebhookSignature("Missing X-Razorpay-Signature header")
    if not hmac.compare_digest(given.strip().lower().encode(), signature(body, secret).encode()):
        raise InvalidWebhookSignature("X-Razorpay-Signature does not match the webhook secret in the payment settings")


def parse_webhook(payload: dict[str, Any], headers: dict[str, str], body: bytes) -> WebhookUpdate:
    event_type = str(payload.get("event") or "")
    # Razorpay names each event in X-Razorpay-Event-Id (the same on every retry); without it the bytes do.
    event_id = headers.get("x-razorpay-event-id") or f"sha256:{sha256_hex(body)}"
    entity: Any = ((payload.get("payload") or {}).get("payment_link") or {}).get("entity") or {}
    if not isinstance(entity, dict):
        entity = {}
    notes = entity.get("notes") if isinstance(entity.get("notes"), dict) else {}
    link_id = entity.get("reference_id") or (notes or {}).get("kaanha_link_id")
    return WebhookUpdate(
        event_id=str(event_id)[:255],
        event_type=event_type[:100],
        gateway_link_id=str(entity["id"]) if entity.get("id") else None,
        link_id=str(link_id) if link_id else None,
        outcome=OUTCOMES.get(event_type),
        amount_paid=_integer(entity.get("amount_paid")),
        currency=str(entity["currency"]).upper() if entity.get("currency") else None,
    )


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class RazorpayGateway:
    name = "razorpay"

    def __init__(self, runtime: Runtime, credentials: Credentials) -> None:
        self.runtime = runtime
        self.credentials = credentials
        self.base_url = runtime.settings.payments.razorpay_api_url.rstrip("/")

    def check_expiry(self, expires_at: datetime | None, *, at: datetime) -> datetime | None:
        if expires_at is None:
            return None  # Razorpay's own default (six months); its expiry webhook tells us when
        if expires_at < at + MIN_EXPIRY:
            raise InvalidExpiry("expiresAt: Razorpay links must expire at least 15 minutes from now")
        if expires_at > at + MAX_EXPIRY:
            raise InvalidExpiry("expiresAt: Razorpay links can't last more than six months")
        return expires_at

    async def create_link(self, request: LinkRequest) -> GatewayLink:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "description": request.description,
            # Razorpay wants reference_id unique per account: ours is; the organization's own goes in notes.
            "reference_id": request.link_id,
            "notes": {
                "kaanha_link_id": request.link_id,
                **({"reference": request.reference} if request.reference else {}),
            },
            # We tell the customer on WhatsApp; Razorpay's SMS and email would be a second, unexpected message.
            "notify": {"sms": False, "email": False},
            "reminder_enable": False,
            "callback_url": request.page_url,
            "callback_method": "get",
        }
        if request.customer_phone:
            body["customer"] = {
                "contact": request.customer_phone,
                **({"name": request.customer_name} if request.customer_name else {}),
            }
        if request.expires_at is not None:
            body["expire_by"] = unix(request.expires_at)
        answer = await self._call("POST", "/v1/payment_links", json=body)
        expire_by = answer.get("expire_by")
        return GatewayLink(
            gateway_link_id=str(answer.get("id") or ""),
            url=str(answer.get("short_url") or ""),
            expires_at=datetime.fromtimestamp(int(expire_by), UTC)
            if isinstance(expire_by, int) and expire_by
            else None,
        )

    async def cancel_link(self, gateway_link_id: str | None) -> None:
        if gateway_link_id:
            await self._call("POST", f"/v1/payment_links/{gateway_link_id}/cancel")

    async def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self.runtime.http.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                auth=(self.credentials.key_id or "", self.credentials.key_secret),
                timeout=timeout(self.runtime),
            )
        except httpx.HTTPError as error:
            raise PaymentGatewayError(
                f"Could not reach Razorpay ({type(error).__name__}); nothing was changed, retry"
            ) from None
        body = json_object(response)
        if response.is_success:
            return body
        details: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        words = str(details.get("description") or response.reason_phrase or "no reason given")
        if response.status_code == 401:
            raise PaymentGatewayCredentialsRejected(
                f"Razorpay rejected the key id and secret ({words}): fix them with PUT /payment-settings"
            )
        logger.info("razorpay %s %s answered %s: %s", method, path, response.status_code, words)
        raise PaymentGatewayError(f"Razorpay refused it ({response.status_code}): {words}")

"""A fake of Razorpay's Payment Links API and its webhooks, as Razorpay documents them.

- `POST /v1/payment_links`, `GET /v1/payment_links/{id}`, `POST /v1/payment_links/{id}/cancel`, with HTTP
  basic auth `key_id:key_secret` (401 "Authentication failed" otherwise) and Razorpay's 400 error shape
  `{"error": {"code": "BAD_REQUEST_ERROR", "description", "source", "step", "reason", "metadata", "field"}}`.
- Its checks: integer amount of at least 1.00 (100 paise), a supported currency, `expire_by` at least 15
  minutes ahead and at most six months, `reference_id` unique per account, only `created` links cancel.
- `pay()`, `expire()` and cancels produce `payment_link.paid|expired|cancelled` webhooks signed as Razorpay
  signs them: X-Razorpay-Signature = hex HMAC-SHA256 of the raw body with the webhook secret, and an
  X-Razorpay-Event-Id that stays the same on a retry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaanha.kit.clock import now
from kaanha.testing.fake_payments.common import WebhookCall, json_response, random_id

CURRENCIES = {"INR", "USD", "EUR", "GBP", "AED", "AUD", "CAD", "SGD", "MYR"}
MAX_AMOUNT = 50_000_000
SIX_MONTHS = 180 * 24 * 3600


def _error(description: str, *, status_code: int = 400, field: str | None = None, business: bool = True) -> Response:
    error: dict[str, Any] = {
        "code": "BAD_REQUEST_ERROR",
        "description": description,
        "source": "business" if business else "NA",
        "step": "payment_initiation" if business else "NA",
        "reason": "input_validation_failed" if business else "NA",
        "metadata": {},
    }
    if field:
        error["field"] = field
    return json_response({"error": error}, status_code)


class FakeRazorpay:
    def __init__(
        self,
        *,
        key_id: str = "rzp_test_FakeKey1234",
        key_secret: str = "fake-razorpay-key-secret",  # noqa: S107 - a fake's test key, not a secret
        webhook_secret: str = "fake-razorpay-webhook-secret",  # noqa: S107
    ) -> None:
        self.key_id = key_id
        self.key_secret = key_secret
        self.webhook_secret = webhook_secret
        self.links: dict[str, dict[str, Any]] = {}
        # Every request the fake answered, as (method, path, JSON body or None), for tests to inspect.
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        # Every webhook it produced (pay, expire, cancel), in order.
        self.webhooks: list[WebhookCall] = []
        self._refusals: list[tuple[int, str]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/payment_links", self._create, methods=["POST"]),
                Route("/v1/payment_links/{link_id}", self._fetch, methods=["GET"]),
                Route("/v1/payment_links/{link_id}/cancel", self._cancel, methods=["POST"]),
            ]
        )

    # --- The API -------------------------------------------------------------------------------

    def _authenticated(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            key_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(key_id, self.key_id) and hmac.compare_digest(secret, self.key_secret)

    async def _guard(self, request: Request) -> tuple[Response | None, dict[str, Any] | None]:
        body: dict[str, Any] | None = None
        raw = await request.body()
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                return _error("The request body is not valid JSON"), None
            body = parsed if isinstance(parsed, dict) else None
        self.requests.append((request.method, request.url.path, body))
        if not self._authenticated(request):
            return _error("Authentication failed", status_code=401, business=False), body
        if self._refusals:
            status_code, description = self._refusals.pop(0)
            return _error(description, status_code=status_code, business=status_code < 500), body
        return None, body

    async def _create(self, request: Request) -> Response:
        refused, body = await self._guard(request)
        if refused is not None:
            return refused
        body = body or {}
        amount = body.get("amount")
        currency = body.get("currency", "INR")
        if amount is None:
            return _error("The amount field is required.", field="amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            return _error("The amount must be an integer.", field="amount")
        if currency not in CURRENCIES:
            return _error(f"{currency} is not a supported currency", field="currency")
        if amount < 100:
            return _error(f"The amount must be at least {currency} 1.00", field="amount")
        if amount > MAX_AMOUNT:
            return _error("amount exceeds maximum amount allowed.", field="amount")
        moment = int(now().timestamp())
        expire_by = body.get("expire_by")
        if expire_by is not None:
            if not isinstance(expire_by, int) or expire_by < moment + 15 * 60:
                return _error("expire_by: timestamp must be atleast 15 minutes in future", field="expire_by")
            if expire_by > moment + SIX_MONTHS:
                return _error("expire_by: timestamp cannot be more than 6 months in future", field="expire_by")
        reference_id = body.get("reference_id")
        if reference_id and any(link["reference_id"] == reference_id for link in self.links.values()):
            return _error(f"Payment Link with reference id {reference_id} already exists", field="reference_id")
        link_id = random_id("plink_")
        link = {
            "accept_partial": bool(body.get("accept_partial", False)),
            "amount": amount,
            "amount_paid": 0,
            "callback_method": body.get("callback_method", ""),
            "callback_url": body.get("callback_url", ""),
            "cancelled_at": 0,
            "created_at": moment,
            "currency": currency,
            "customer": body.get("customer") or {},
            "description": body.get("description", ""),
            "expire_by": expire_by or 0,
            "expired_at": 0,
            "first_min_partial_amount": 0,
            "id": link_id,
            "notes": body.get("notes") or {},
            "notify": body.get("notify") or {"email": False, "sms": False},
            "payments": None,
            "reference_id": reference_id or "",
            "reminder_enable": bool(body.get("reminder_enable", False)),
            "reminders": [],
            "short_url": f"https://rzp.io/i/{link_id[6:13]}",
            "status": "created",
            "updated_at": moment,
            "upi_link": False,
            "user_id": "",
        }
        self.links[link_id] = link
        return json_response(link)

    async def _fetch(self, request: Request) -> Response:
        refused, _ = await self._guard(request)
        if refused is not None:
            return refused
        link = self.links.get(request.path_params["link_id"])
        if link is None:
            return _error("The id provided does not exist", business=False)
        return json_response(link)

    async def _cancel(self, request: Request) -> Response:
        refused, _ = await self._guard(request)
        if refused is not None:
            return refused
        link = self.links.get(request.path_params["link_id"])
        if link is None:
            return _error("The id provided does not exist", business=False)
        if link["status"] != "created":
            return _error(f"Payment Link cannot be cancelled as it is already {link['status']}")
        moment = int(now().timestamp())
        link.update(status="cancelled", cancelled_at=moment, updated_at=moment)
        self._webhook("payment_link.cancelled", link)
        return json_response(link)

    def refuse_next(self, description: str, *, status_code: int = 400) -> None:
        """Answer the next authenticated call with this error (a rule the caller didn't check, an outage)."""
        self._refusals.append((status_code, description))

    # --- Playing the customer and the clock ----------------------------------------------------

    def pay(self, link_id: str, *, method: str = "upi") -> WebhookCall:
        """The customer pays the whole amount: the link turns `paid`; returns Razorpay's signed webhook."""
        link = self.links[link_id]
        if link["status"] != "created":
            raise ValueError(f"link {link_id} is {link['status']} and can't be paid")
        moment = int(now().timestamp())
        link.update(status="paid", amount_paid=link["amount"], updated_at=moment)
        payment = {
            "id": random_id("pay_"),
            "entity": "payment",
            "amount": link["amount"],
            "currency": link["currency"],
            "status": "captured",
            "method": method,
            "captured": True,
            "contact": (link["customer"] or {}).get("contact"),
            "created_at": moment,
        }
        return self._webhook("payment_link.paid", link, payment=payment)

    def expire(self, link_id: str) -> WebhookCall:
        link = self.links[link_id]
        if link["status"] != "created":
            raise ValueError(f"link {link_id} is {link['status']} and can't expire")
        moment = int(now().timestamp())
        link.update(status="expired", expired_at=moment, updated_at=moment)
        return self._webhook("payment_link.expired", link)

    def sign(self, body: bytes) -> str:
        return hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()

    def _webhook(self, event: str, link: dict[str, Any], *, payment: dict[str, Any] | None = None) -> WebhookCall:
        payload: dict[str, Any] = {"payment_link": {"entity": dict(link)}}
        contains = ["payment_link"]
        if payment is not None:
            payload["payment"] = {"entity": payment}
            contains.append("payment")
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_FakeAccount0001",
                "event": event,
                "contains": contains,
                "payload": payload,
                "created_at": int(now().timestamp()),
            }
        ).encode()
        call = WebhookCall(
            event_type=event,
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": self.sign(body),
                "X-Razorpay-Event-Id": random_id("evt_"),
            },
        )
        self.webhooks.append(call)
        return call

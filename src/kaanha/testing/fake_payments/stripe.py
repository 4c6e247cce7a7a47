"""A fake of Stripe's Checkout Sessions API and its webhooks, as Stripe documents them.

- `POST /v1/checkout/sessions` (form-encoded, `line_items[0][price_data][...]`), `GET /v1/checkout/sessions/{id}`,
  `POST /v1/checkout/sessions/{id}/expire`; the secret key as a Bearer token (or basic auth's user), 401
  otherwise, and Stripe's error shape `{"error": {"type", "message", "code", "param"}}`.
- Its checks: `mode`, a lowercase supported currency, the documented minimum charge per currency, eight
  digits at most, `expires_at` 30 minutes to 24 hours ahead, only `open` sessions expire; an
  `Idempotency-Key` replays the first answer, and used again with other parameters is a 400
  `idempotency_error`.
- `pay()` / `expire()` (and expiring through the API) produce `checkout.session.completed|expired` events
  signed as Stripe signs them: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
  `pay(delayed=True)` plays a delayed method (a bank debit): the session completes unpaid, and
  `settle_delayed()` later sends `checkout.session.async_payment_succeeded|failed`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaanha.kit.clock import now
from kaanha.testing.fake_payments.common import WebhookCall, json_response, random_id

# Stripe's minimum charge amounts, in minor units ($0.50 or its equivalent).
MINIMUMS = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "inr": 50,
    "aed": 200,
    "aud": 50,
    "cad": 50,
    "sgd": 50,
    "myr": 200,
    "jpy": 50,
}
ZERO_DECIMAL = {"jpy"}
MAX_AMOUNT = 99_999_999


def _error(
    message: str,
    *,
    status_code: int = 400,
    code: str | None = None,
    param: str | None = None,
    kind: str = "invalid_request_error",
) -> Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return json_response({"error": error}, status_code)


def _display(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount} {currency}"
    return f"{amount / 100:.2f} {currency}"


class FakeStripe:
    def __init__(
        self,
        *,
        secret_key: str = "sk_test_FakeStripeKey0001",  # noqa: S107 - a fake's test key, not a secret
        webhook_secret: str = "whsec_FakeStripeSecret0001",  # noqa: S107
    ) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.webhooks: list[WebhookCall] = []
        # Idempotency-Key -> (the request's path and parameters, the session it made).
        self._idempotent: dict[str, tuple[tuple[str, dict[str, str]], str]] = {}
        self._refusals: list[tuple[int, str]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/checkout/sessions", self._create, methods=["POST"]),
                Route("/v1/checkout/sessions/{session_id}", self._fetch, methods=["GET"]),
                Route("/v1/checkout/sessions/{session_id}/expire", self._expire, methods=["POST"]),
            ]
        )

    # --- The API -------------------------------------------------------------------------------

    def _key(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
        return None

    async def _guard(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        self.requests.append((request.method, request.url.path, form))
        key = self._key(request)
        if not key:
            return _error(
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status_code=401,
            ), form
        if not hmac.compare_digest(key, self.secret_key):
            return _error(f"Invalid API Key provided: {key[:8]}****{key[-4:]}", status_code=401), form
        if self._refusals:
            status_code, message = self._refusals.pop(0)
            return _error(message, status_code=status_code), form
        return None, form

    async def _create(self, request: Request) -> Response:
        refused, form = await self._guard(request)
        if refused is not None:
            return refused
        key = request.headers.get("idempotency-key", "")
        replay = self._idempotent.get(key)
        if replay is not None:
            first_request, session_id = replay
            if first_request != (request.url.path, form):
                return _error(
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                    kind="idempotency_error",
                )
            return json_response(self.sessions[session_id])
        if not form.get("mode"):
            return _error("Missing required param: mode.", code="parameter_missing", param="mode")
        if form["mode"] != "payment":
            return _error("This fake supports mode=payment only.", code="parameter_invalid", param="mode")
        prefix = "line_items[0][price_data]"
        currency = form.get(f"{prefix}[currency]", "")
        if currency not in MINIMUMS:
            return _error(f"Invalid currency: {currency}.", code="parameter_invalid", param=f"{prefix}[currency]")
        raw_amount = form.get(f"{prefix}[unit_amount]", "")
        if not raw_amount.isdigit():
            return _error(
                "Invalid integer: " + raw_amount, code="parameter_invalid_integer", param=f"{prefix}[unit_amount]"
            )
        amount = int(raw_amount)
        if amount > MAX_AMOUNT:
            return _error(
                f"This value must be less than or equal to {MAX_AMOUNT}.",
                code="parameter_invalid_integer",
                param=f"{prefix}[unit_amount]",
            )
        if amount < MINIMUMS[currency]:
            least = _display(MINIMUMS[currency], currency)
            return _error(
                f"The Checkout Session's total amount due must add up to at least {least}", code="amount_too_small"
            )
        if not form.get(f"{prefix}[product_data][name]"):
            return _error(
                "Missing required param: line_items[0][price_data][product_data][name].", code="parameter_missing"
            )
        quantity = form.get("line_items[0][quantity]", "")
        if quantity != "1" and not (quantity.isdigit() and int(quantity) >= 1):
            return _error("Missing required param: line_items[0][quantity].", code="parameter_missing")
        moment = int(now().timestamp())
        expires_at = moment + 24 * 3600
        if "expires_at" in form:
            if not form["expires_at"].isdigit():
                return _error(
                    "Invalid integer: " + form["expires_at"], code="parameter_invalid_integer", param="expires_at"
                )
            expires_at = int(form["expires_at"])
            if expires_at < moment + 30 * 60:
                return _error(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                    code="parameter_invalid_integer",
                    param="expires_at",
                )
            if expires_at > moment + 24 * 3600:
                return _error(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                    code="parameter_invalid_integer",
                    param="expires_at",
                )
        session_id = random_id("cs_test_a1", 40)
        metadata = {
            key[9:-1]: value for key, value in form.items() if key.startswith("metadata[") and key.endswith("]")
        }
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount * int(quantity or 1),
            "amount_total": amount * int(quantity or 1),
            "client_reference_id": form.get("client_reference_id"),
            "created": moment,
            "currency": currency,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": metadata,
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        if key:
            self._idempotent[key] = ((request.url.path, form), session_id)
        return json_response(session)

    async def _fetch(self, request: Request) -> Response:
        refused, _ = await self._guard(request)
        if refused is not None:
            return refused
        session = self.sessions.get(request.path_params["session_id"])
        if session is None:
            return self._missing(request.path_params["session_id"])
        return json_response(session)

    async def _expire(self, request: Request) -> Response:
        refused, _ = await self._guard(request)
        if refused is not None:
            return refused
        session = self.sessions.get(request.path_params["session_id"])
        if session is None:
            return self._missing(request.path_params["session_id"])
        if session["status"] != "open":
            return _error('Only Checkout Sessions with a status in ["open"] can be expired.')
        self.expire(session["id"])
        return json_response(session)

    def _missing(self, session_id: str) -> Response:
        return _error(
            f"No such checkout.session: '{session_id}'", status_code=404, code="resource_missing", param="session"
        )

    def refuse_next(self, message: str, *, status_code: int = 400) -> None:
        """Answer the next authenticated call with this error (a rule the caller didn't check, an outage)."""
        self._refusals.append((status_code, message))

    # --- Playing the customer and the clock ----------------------------------------------------

    def pay(self, session_id: str, *, delayed: bool = False) -> WebhookCall:
        """The customer pays: the session completes, paid; returns Stripe's signed `checkout.session.completed`.

        `delayed`: a delayed method (a bank debit), so the session completes `unpaid`; `settle_delayed` ends it.
        """
        session = self.sessions[session_id]
        if session["status"] != "open":
            raise ValueError(f"session {session_id} is {session['status']} and can't be paid")
        session.update(
            status="complete", payment_status="unpaid" if delayed else "paid", payment_intent=random_id("pi_", 24)
        )
        return self._event("checkout.session.completed", session)

    def settle_delayed(self, session_id: str, *, succeeded: bool) -> WebhookCall:
        """The bank answers a delayed payment: `checkout.session.async_payment_succeeded` or `..._failed`."""
        session = self.sessions[session_id]
        if session["status"] != "complete" or session["payment_status"] != "unpaid":
            raise ValueError(f"session {session_id} has no delayed payment waiting")
        if succeeded:
            session.update(payment_status="paid")
            return self._event("checkout.session.async_payment_succeeded", session)
        return self._event("checkout.session.async_payment_failed", session)

    def expire(self, session_id: str) -> WebhookCall:
        session = self.sessions[session_id]
        session.update(status="expired")
        return self._event("checkout.session.expired", session)

    def sign(self, body: bytes, *, timestamp: int | None = None) -> str:
        """A Stripe-Signature header for `body`, at `timestamp` (now by default)."""
        moment = int(now().timestamp()) if timestamp is None else timestamp
        digest = hmac.new(self.webhook_secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={moment},v1={digest}"

    def _event(self, event_type: str, session: dict[str, Any]) -> WebhookCall:
        body = json.dumps(
            {
                "id": random_id("evt_", 24),
                "object": "event",
                "api_version": "2025-03-31.basil",
                "created": int(now().timestamp()),
                "data": {"object": dict(session)},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        ).encode()
        call = WebhookCall(
            event_type=event_type,
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": self.sign(body)},
        )
        self.webhooks.append(call)
        return call

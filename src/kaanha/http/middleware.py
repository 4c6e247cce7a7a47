"""Pure ASGI middleware: request ids, body size limits, and the per-IP API rate limit."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaanha.config import Settings
from kaanha.rate_limit.limiter import RateLimiter

API_PREFIX = "/api/"


async def _send_json_error(send: Send, status: int, message: str, code: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": message, "code": code}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Tags each request with an id (the client's X-Request-ID if sane) that logs and 500s carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413: at once from Content-Length, else while streaming.

    Nothing is read whole into memory here; the limit depends on the path (uploads get more).
    """

    def __init__(self, app: ASGIApp, *, limit_for_path: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for_path = limit_for_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for_path(scope["path"])
        length_header = dict(scope["headers"]).get(b"content-length")
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                await _send_json_error(send, 400, "Content-Length is not a number", "bad_request", {})
                return
            if declared > limit:
                await _send_json_error(send, 413, _too_large(limit), "payload_too_large", {"Connection": "close"})
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions met while reading a body; our handler renders it.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> str:
    return f"The request body is larger than the {limit // (1024 * 1024) or 1} MB allowed here"


def client_ip(scope: Scope, settings: Settings) -> str:
    """The caller's address; X-Forwarded-For is believed only when the peer is a trusted proxy."""
    peer = str((scope.get("client") or ("unknown", 0))[0])
    networks = settings.trusted_proxy_networks
    if not networks or not _in_networks(peer, networks):
        return str(peer)
    forwarded = str(dict(scope["headers"]).get(b"x-forwarded-for", b"").decode("latin-1"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    # Walk from the nearest hop back; the first address that is not one of our proxies is the client.
    for hop in reversed(hops):
        if not _in_networks(hop, networks):
            return hop
    return hops[0] if hops else str(peer)


def _in_networks(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class ApiRateLimitMiddleware:
    """120 requests/minute per client IP (configurable) on /api/, with the RateLimit-* headers."""

    def __init__(self, app: ASGIApp, *, settings: Settings, limiter: RateLimiter) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter
        self.limit = RateLimiter.parse(settings.rate_limits.api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.settings.rate_limits.enabled
            or not scope["path"].startswith(API_PREFIX)
            or scope["path"].startswith("/api/webhooks/")  # Meta's deliveries are not a client's traffic
        ):
            await self.app(scope, receive, send)
            return
        verdict = await self.limiter.hit(self.limit, "api", client_ip(scope, self.settings))
        headers = verdict.headers()
        if not verdict.allowed:
            await _send_json_error(
                send,
                429,
                f"Too many requests: the limit is {self.settings.rate_limits.api} per IP address; "
                f"retry in {verdict.reset_after} s",
                "rate_limited",
                headers,
            )
            return
        raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A response about a narrower limit (per recipient) keeps its own RateLimit-* headers.
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in raw_headers if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

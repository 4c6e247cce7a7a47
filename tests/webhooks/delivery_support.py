"""Helpers for the delivery engine's tests: endpoints and events as rows, resolvers from a table, loopback only.

The rule these enforce: tests send traffic to 127.0.0.0/8 or ::1 and nowhere else. Names resolve
through a table (never real DNS), and every request through `runtime.http` is checked by
`LoopbackOnly` before a socket is opened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx
from sqlalchemy import select

from kaanha.events import types
from kaanha.events.service import emit
from kaanha.kit.ids import new_id
from kaanha.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from kaanha.runtime import Runtime
from kaanha.webhooks.signing import new_secret


class LoopbackOnly(httpx.AsyncBaseTransport):
    """A real transport that refuses (fails the test) any request not addressed to a loopback IP."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"a test tried to send traffic to {host}, outside the loopback range")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class TableResolver:
    """Resolves names from a table and remembers what it was asked; an unknown name fails as DNS would."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    def __call__(self, host: str) -> Iterable[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test's table")
        return list(self.table[host])


@contextlib.asynccontextmanager
async def loopback_only(runtime: Runtime) -> AsyncIterator[None]:
    """Swap the runtime's HTTP client and resolver for loopback-only ones for the block."""
    original_http, original_resolver = runtime.http, runtime.resolver
    runtime.http = httpx.AsyncClient(transport=LoopbackOnly())
    runtime.resolver = TableResolver()
    try:
        yield
    finally:
        await runtime.http.aclose()
        runtime.http, runtime.resolver = original_http, original_resolver


class Recorder:
    """An httpx transport that connects nowhere: it records each request and answers with `answer`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda _request: httpx.Response(200, text="ok"))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.answer(request)
        if response.is_stream_consumed:
            # Answer as a network would, with a body still to be read (httpx preloads `content=` bodies).
            return httpx.Response(
                response.status_code, headers=response.headers, stream=httpx.ByteStream(response.content)
            )
        return response


@contextlib.contextmanager
def never_answering_server() -> Iterator[str]:
    """A loopback TCP port that accepts connections (the kernel's backlog) and never answers: a dead endpoint."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        listener.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the port was just released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def add_endpoint(
    runtime: Runtime,
    organization_id: str,
    url: str,
    *,
    events: list[str] | None = None,
    secret: str | None = None,
    enabled: bool = True,
) -> tuple[str, str]:
    """An endpoint row as the API would create it; returns (endpoint id, its signing secret)."""
    secret = secret or new_secret()
    endpoint_id = new_id("whe")
    async with runtime.database.transaction() as session:
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                organization_id=organization_id,
                url=url,
                events=events or ["*"],
                enabled=enabled,
                secret_encrypted=runtime.secret_box.encrypt(secret),
            )
        )
    return endpoint_id, secret


async def emit_event(
    runtime: Runtime, organization_id: str, *, type: str = types.CONTACT_CREATED, data: dict[str, Any] | None = None
) -> str:
    """Emit an event as a change would (one delivery per subscribed endpoint); returns its id."""
    async with runtime.database.transaction() as session:
        event = await emit(session, organization_id=organization_id, type=type, data=data or {"id": new_id("ctc")})
    return event.id


async def update_endpoint(runtime: Runtime, endpoint_id: str, **values: Any) -> None:
    async with runtime.database.transaction() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        for name, value in values.items():
            setattr(endpoint, name, value)


async def endpoint_row(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.database.sessions() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
    assert endpoint is not None
    return endpoint


async def deliveries(runtime: Runtime, endpoint_id: str) -> list[WebhookDelivery]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
        return list(rows)


async def delivery_row(runtime: Runtime, delivery_id: str) -> WebhookDelivery:
    async with runtime.database.sessions() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    return delivery


async def attempts(runtime: Runtime, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.attempt)
        )
        return list(rows)

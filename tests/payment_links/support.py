"""Shared steps of the payment link tests: settings, links, gateway fakes wired in, webhooks delivered."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from kaanha.models import Event, Message, PaymentLink
from kaanha.runtime import Runtime
from kaanha.testing.fake_payments import FakeRazorpay, FakeStripe, WebhookCall
from tests.conftest import API, Tenant

UPI = {"gateway": "upi", "upiId": "asha.stores@okhdfcbank", "payeeName": "Asha Stores"}
CUSTOMER = "+919876543210"


async def put_settings(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = await client.put(f"{API}/payment-settings", json=body, headers=tenant.headers)
    assert r.status_code == 200, r.text
    settings: dict[str, Any] = r.json()
    return settings


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    body = {"amount": 50000, "description": "Order #1042", "phone": CUSTOMER, **body}
    return await client.post(f"{API}/payment-links", json=body, headers=tenant.headers)


async def created(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = await create(client, tenant, **body)
    assert r.status_code == 201, r.text
    link: dict[str, Any] = r.json()
    return link


async def get_link(client: httpx.AsyncClient, tenant: Tenant, link_id: str) -> dict[str, Any]:
    r = await client.get(f"{API}/payment-links/{link_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    link: dict[str, Any] = r.json()
    return link


# Loopback base URLs, so even a client that bypassed the transport would stay on this machine.
RAZORPAY_URL = "http://127.0.0.1:9"
STRIPE_URL = "http://127.0.0.2:9"


class FakeGateways(httpx.AsyncBaseTransport):
    """The runtime's gateway calls, answered in-process by the fake set up for each gateway's host."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.ASGITransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.hosts[request.url.host].handle_async_request(request)


class Held:
    """Wraps a fake's app so each call waits until `release` is set: a gateway taking its time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answering = asyncio.Event()  # set once a call has reached the gateway
        self.both_answering = asyncio.Event()  # and once a second one has
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if self.answering.is_set():
                self.both_answering.set()
            self.answering.set()
            await self.release.wait()
        await self.app(scope, receive, send)


async def use_fake(runtime: Runtime, fake: FakeRazorpay | FakeStripe, *, app: Any = None) -> None:
    """Send the runtime's calls to `fake`'s gateway to it (through `app`, a wrapper, when given), in-process.

    Fakes of the other gateway set up earlier keep answering for theirs.
    """
    transport = getattr(runtime.http, "_transport", None)
    if not isinstance(transport, FakeGateways):
        await runtime.http.aclose()
        transport = FakeGateways()
        runtime.http = httpx.AsyncClient(transport=transport)
        runtime.settings.payments.razorpay_api_url = RAZORPAY_URL
        runtime.settings.payments.stripe_api_url = STRIPE_URL
    url = RAZORPAY_URL if isinstance(fake, FakeRazorpay) else STRIPE_URL
    transport.hosts[httpx.URL(url).host] = httpx.ASGITransport(app=app or fake.app)


async def use_razorpay(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, fake: FakeRazorpay
) -> dict[str, Any]:
    await use_fake(runtime, fake)
    return await put_settings(
        client,
        tenant,
        gateway="razorpay",
        keyId=fake.key_id,
        keySecret=fake.key_secret,
        webhookSecret=fake.webhook_secret,
    )


async def use_stripe(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, fake: FakeStripe) -> dict[str, Any]:
    await use_fake(runtime, fake)
    return await put_settings(
        client, tenant, gateway="stripe", keySecret=fake.secret_key, webhookSecret=fake.webhook_secret
    )


async def deliver(
    client: httpx.AsyncClient, gateway: str, tenant: Tenant, call: WebhookCall, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a gateway's webhook to our callback, as the gateway would."""
    return await client.post(
        f"/api/webhooks/{gateway}/{tenant.organization_id}",
        content=call.body,
        headers=call.headers if headers is None else headers,
    )


async def events(runtime: Runtime, tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    async with runtime.database.transaction() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.organization_id == tenant.organization_id, Event.type == event_type)
            .order_by(Event.created_at)
        )
        return [event.data for event in rows]


async def count_links(runtime: Runtime) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(PaymentLink)) or 0)


async def outbound_texts(runtime: Runtime, tenant: Tenant) -> list[dict[str, Any]]:
    async with runtime.database.transaction() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.organization_id == tenant.organization_id, Message.direction == "outbound")
            .order_by(Message.created_at)
        )
        return [{"type": message.type, **message.content} for message in rows]

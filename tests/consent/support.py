"""What the opt-in tests share: customers writing (through the sandbox or as Meta's webhooks), and reading back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.phone import wa_id
from kaanha.models import Event, Template, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.inbound import InboundSummary, process_payload
from kaanha.whatsapp.sandbox.payloads import message_payload, new_wamid
from tests.conftest import API, Tenant

PHONE = "+919876543210"
OPT_OUT_REPLY = "You've been unsubscribed from our marketing messages. Reply START to subscribe again."
OPT_IN_REPLY = "You're subscribed to our marketing messages. Reply STOP to unsubscribe."


async def get(client: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any) -> Any:
    response = await client.get(f"{API}{path}", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def create_contact(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        f"{API}/contacts", headers=tenant.headers, json={"phone": PHONE, "name": "Asha", **fields}
    )
    assert response.status_code == 201, response.text
    contact: dict[str, Any] = response.json()
    return contact


async def writes(client: httpx.AsyncClient, tenant: Tenant, text: str, *, phone: str = PHONE) -> dict[str, Any]:
    """The customer types `text` to the sandbox number; returns their stored message."""
    response = await client.post(
        f"{API}/sandbox/inbound", headers=tenant.headers, json={"from": phone, "name": "Asha", "text": text}
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


def meta_message(message_type: str, body: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """One of Meta's inbound message objects (without `from`), with a fresh WhatsApp id."""
    moment = at or now()
    return {"id": new_wamid(), "timestamp": str(int(moment.timestamp())), "type": message_type, message_type: body}


async def webhook(runtime: Runtime, tenant: Tenant, message: dict[str, Any], *, phone: str = PHONE) -> InboundSummary:
    """Meta's webhook carrying `message` from `phone`, applied by the inbound pipeline to the tenant's number."""
    async with runtime.database.transaction() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
        assert connection is not None
        payload = message_payload(connection, sender=wa_id(phone), profile_name="Asha", message=message)
        return await process_payload(session, payload)


async def messages(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    """Every message of the organization, newest first, as `GET /messages` lists them."""
    found: list[dict[str, Any]] = (await get(client, tenant, "/messages", limit=100))["data"]
    return found


async def outbound_texts(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    """The texts we sent, oldest first."""
    return [m["content"]["text"] for m in reversed(await messages(client, tenant)) if m["direction"] == "outbound"]


async def history(client: httpx.AsyncClient, tenant: Tenant, contact_id: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get(client, tenant, f"/contacts/{contact_id}/opt-in-history", **params))[
        "data"
    ]
    return found


async def events(runtime: Runtime, tenant: Tenant, event_type: str) -> list[Event]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.organization_id == tenant.organization_id, Event.type == event_type)
            .order_by(Event.seq)
        )
        return list(rows)


async def add_marketing_template(runtime: Runtime, tenant: Tenant, name: str = "spring_sale") -> None:
    """An approved MARKETING template (the sandbox's samples are all UTILITY)."""
    async with runtime.database.transaction() as session:
        session.add(
            Template(
                id=new_id("tpl"),
                organization_id=tenant.organization_id,
                name=name,
                language="en_US",
                category="MARKETING",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Our spring sale is on: 20% off everything this week."}],
            )
        )


def template(name: str) -> dict[str, Any]:
    return {"type": "template", "templateName": name, "language": "en_US", "components": []}

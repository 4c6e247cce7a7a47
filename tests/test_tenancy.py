"""One organization can never see or touch another's rows, whatever the endpoint.

The route walk reads `app.routes`, so an endpoint added later is covered without touching this file;
an endpoint whose path parameter has a new name fails here until `ids` below learns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Index, MetaData, String, Table, UniqueConstraint, select
from starlette.routing import Route

from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.models import Model, TenantModel, WebhookDelivery
from tests.conftest import API

CUSTOMER = "+919876543210"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x00\x00\x00\x00"

# Bodies that would be valid if the id were ours, so that only the id decides the answer.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/whatsapp-api/contacts/{contact_id}"): {"name": "Hijacked", "tags": ["stolen"]},
    ("PATCH", "/api/whatsapp-api/chats/{conversation_id}"): {"status": "RESOLVED"},
    ("PATCH", "/api/whatsapp-api/webhooks/{webhook_id}"): {"description": "Hijacked", "enabled": False},
    ("PATCH", "/api/whatsapp-api/ai-agents/{agent_id}"): {"name": "Hijacked", "enabled": False},
    ("POST", "/api/whatsapp-api/ai-agents/{agent_id}/test"): {"question": "Their question?"},
    ("PATCH", "/api/whatsapp-api/quick-replies/{quick_reply_id}"): {"text": "Hijacked"},
}
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass
class Theirs:
    """Another organization's rows, by the path parameter names the API uses for them."""

    ids: dict[str, str]
    secrets: set[str]  # strings that must never appear in our answers


def all_routes(app) -> list[Any]:  # type: ignore[no-untyped-def]
    """Every route of the app, with included routers flattened (newer FastAPI keeps them nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI that flattens included routers into app.routes itself
        return [route for route in app.routes if isinstance(route, Route)]
    return [context for context in iter_route_contexts(app.routes) if isinstance(context.original_route, Route)]


def api_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path) of every route under /api/."""
    routes = []
    for route in all_routes(app):
        if not str(route.path).startswith("/api/"):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                routes.append((method, str(route.path)))
    return routes


@pytest.fixture
async def theirs(client, runtime, other_tenant) -> Theirs:
    headers = other_tenant.headers
    # Port 9 (discard) on loopback: should anything ever be delivered, it goes nowhere beyond this machine.
    runtime.settings.allow_private_urls = True
    webhook = await client.post(
        f"{API}/webhooks",
        headers=headers,
        json={"url": "http://127.0.0.1:9/their-hook", "events": ["*"], "description": "Their webhook"},
    )
    assert webhook.status_code == 201, webhook.text
    contact = await client.post(
        f"{API}/contacts", headers=headers, json={"phone": "+919800000001", "name": "Their Customer"}
    )
    assert contact.status_code == 201, contact.text
    inbound = await client.post(
        f"{API}/sandbox/inbound", headers=headers, json={"from": CUSTOMER, "name": "Their Asha", "text": "secret"}
    )
    assert inbound.status_code == 201, inbound.text
    media = await client.post(f"{API}/media", headers=headers, files={"file": ("theirs.png", PNG, "image/png")})
    assert media.status_code == 201, media.text
    key = await client.post(f"{API}/api-keys", headers=headers, json={"name": "their integration"})
    assert key.status_code == 201, key.text
    templates = await client.get(f"{API}/templates", headers=headers)
    assert templates.status_code == 200, templates.text
    template_id = templates.json()["data"][0]["id"]
    broadcast = await client.post(
        f"{API}/broadcasts",
        headers=headers,
        json={
            "name": "Their campaign",
            "templateName": "hello_world",
            "language": "en_US",
            "audience": {"contactIds": [contact.json()["id"]]},
            "scheduledAt": (now() + timedelta(days=30)).isoformat(),
        },
    )
    assert broadcast.status_code == 201, broadcast.text
    quick_reply = await client.post(
        f"{API}/quick-replies", headers=headers, json={"shortcut": "theirs", "text": "Their saved answer"}
    )
    assert quick_reply.status_code == 201, quick_reply.text
    payments = await client.put(
        f"{API}/payment-settings",
        headers=headers,
        json={"gateway": "upi", "upiId": "their.shop@okaxis", "payeeName": "Their Shop"},
    )
    assert payments.status_code == 200, payments.text
    payment_link = await client.post(
        f"{API}/payment-links",
        headers=headers,
        json={"amount": 50000, "description": "Their order", "contactId": contact.json()["id"]},
    )
    assert payment_link.status_code == 201, payment_link.text
    agent = await client.post(
        f"{API}/ai-agents",
        headers=headers,
        json={"name": "Their bot", "knowledgeBase": [{"question": "Their question?", "answer": "Their bot's answer"}]},
    )
    assert agent.status_code == 201, agent.text
    message = inbound.json()
    async with runtime.database.transaction() as session:
        event = await emit(session, organization_id=other_tenant.organization_id, type="contact.updated", data={})
    async with runtime.database.transaction() as session:
        delivery_id = await session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event.id))
    assert delivery_id is not None
    return Theirs(
        ids={
            "contact_id": contact.json()["id"],
            "conversation_id": message["conversationId"],
            "message_id": message["id"],
            "media_id": media.json()["mediaId"],
            "key_id": key.json()["id"],
            "webhook_id": webhook.json()["id"],
            "delivery_id": delivery_id,
            "template_id": template_id,
            "broadcast_id": broadcast.json()["id"],
            "quick_reply_id": quick_reply.json()["id"],
            "payment_link_id": payment_link.json()["id"],
            "agent_id": agent.json()["id"],
            # Gateway webhooks name the organization in their path: another tenant's is not ours to feed.
            "organization_id": other_tenant.organization_id,
        },
        secrets={
            other_tenant.organization_id,
            contact.json()["id"],
            message["contactId"],
            message["conversationId"],
            message["id"],
            media.json()["mediaId"],
            key.json()["id"],
            key.json()["prefix"],
            key.json()["key"],
            "Their Customer",
            "Their Asha",
            "+919800000001",
            "their integration",
            webhook.json()["id"],
            webhook.json()["secret"],
            "http://127.0.0.1:9/their-hook",
            "Their webhook",
            delivery_id,
            template_id,
            broadcast.json()["id"],
            quick_reply.json()["id"],
            "Their saved answer",
            payment_link.json()["id"],
            "their.shop@okaxis",
            "Their Shop",
            "Their order",
            agent.json()["id"],
            "Their bot",
            "Their bot's answer",
        },
    )


@pytest.fixture
async def ours(client, tenant) -> dict[str, Any]:
    """Our own rows, so that lists have something in them; the same customer writes to both of us."""
    r = await client.post(f"{API}/sandbox/inbound", headers=tenant.headers, json={"from": CUSTOMER, "text": "hello"})
    assert r.status_code == 201, r.text
    return r.json()


async def test_every_route_with_an_id_answers_404_for_another_organizations_id(
    app, client, tenant, other_tenant, theirs, ours
):
    seen_params: set[str] = set()
    for method, path in api_routes(app):
        params = _PARAM.findall(path)
        if not params:
            continue
        unknown = set(params) - set(theirs.ids)
        assert not unknown, f"{method} {path}: teach this test the path parameter(s) {unknown}"
        seen_params.update(params)
        url = _PARAM.sub(lambda match: theirs.ids[match.group(1)], path)
        body = BODIES.get((method, path), {}) if method in {"POST", "PUT", "PATCH"} else None

        r = await client.request(method, url, headers=tenant.headers, json=body)

        assert r.status_code == 404, f"{method} {path} answered {r.status_code}: {r.text}"
        assert set(r.json()) >= {"error", "code"}, f"{method} {path}: {r.text}"
        for secret in theirs.secrets - set(theirs.ids.values()):
            assert secret not in r.text, f"{method} {path} leaked {secret!r}"

    # The walk really visited the resources we know of.
    assert seen_params >= {
        "contact_id",
        "conversation_id",
        "message_id",
        "media_id",
        "key_id",
        "webhook_id",
        "delivery_id",
        "template_id",
        "broadcast_id",
        "quick_reply_id",
        "payment_link_id",
        "organization_id",
        "agent_id",
    }


async def test_the_route_walk_changed_nothing_of_theirs(app, client, tenant, other_tenant, theirs, ours):
    for method, path in api_routes(app):
        if _PARAM.search(path):
            url = _PARAM.sub(lambda match: theirs.ids[match.group(1)], path)
            body = BODIES.get((method, path), {}) if method in {"POST", "PUT", "PATCH"} else None
            await client.request(method, url, headers=tenant.headers, json=body)

    headers = other_tenant.headers
    contact = await client.get(f"{API}/contacts/{theirs.ids['contact_id']}", headers=headers)
    assert contact.status_code == 200
    assert contact.json()["name"] == "Their Customer"
    assert contact.json()["tags"] == []
    chat = await client.get(f"{API}/chats/{theirs.ids['conversation_id']}", headers=headers)
    assert chat.status_code == 200
    assert chat.json()["status"] == "OPEN"
    assert chat.json()["unreadCount"] == 1
    assert (await client.get(f"{API}/messages/{theirs.ids['message_id']}", headers=headers)).status_code == 200
    assert (await client.get(f"/api/media/{theirs.ids['media_id']}", headers=headers)).content == PNG
    keys = await client.get(f"{API}/api-keys", headers=headers)
    (their_key,) = [key for key in keys.json()["data"] if key["id"] == theirs.ids["key_id"]]
    assert their_key["revokedAt"] is None
    webhook = await client.get(f"{API}/webhooks/{theirs.ids['webhook_id']}", headers=headers)
    assert webhook.status_code == 200
    assert webhook.json()["description"] == "Their webhook"
    assert webhook.json()["enabled"] is True
    assert webhook.json()["createdAt"] == webhook.json()["updatedAt"]  # not edited, nor its secret rotated
    assert (await client.get(f"{API}/templates/{theirs.ids['template_id']}", headers=headers)).status_code == 200
    broadcast = await client.get(f"{API}/broadcasts/{theirs.ids['broadcast_id']}", headers=headers)
    assert broadcast.json()["status"] == "scheduled"  # neither paused nor cancelled
    quick_reply = await client.get(f"{API}/quick-replies/{theirs.ids['quick_reply_id']}", headers=headers)
    assert quick_reply.json()["text"] == "Their saved answer"
    payment_link = await client.get(f"{API}/payment-links/{theirs.ids['payment_link_id']}", headers=headers)
    assert payment_link.json()["status"] == "created"  # neither cancelled nor marked paid
    agent = await client.get(f"{API}/ai-agents/{theirs.ids['agent_id']}", headers=headers)
    assert (agent.json()["name"], agent.json()["enabled"], agent.json()["documents"]) == ("Their bot", True, [])


async def test_lists_never_show_another_organizations_rows(app, client, tenant, theirs, ours):
    listed = 0
    for method, path in api_routes(app):
        if method != "GET" or _PARAM.search(path):
            continue
        if path == f"{API}/events/stream":
            continue  # never ends; tests/events/test_stream.py shows another organization's events never appear

        r = await client.get(path, headers=tenant.headers)

        assert r.status_code < 500, f"GET {path} answered {r.status_code}: {r.text}"
        for secret in theirs.secrets:
            assert secret not in r.text, f"GET {path} shows another organization's {secret!r}"
        if r.headers.get("content-type", "").startswith("application/json") and "data" in r.json():
            listed += 1
    assert listed >= 5  # contacts, chats, messages, api-keys, webhooks at least

    # Our own rows are there: the lists were not empty by accident.
    contacts = (await client.get(f"{API}/contacts", headers=tenant.headers)).json()
    assert [c["id"] for c in contacts["data"]] == [ours["contactId"]]
    assert contacts["pagination"]["total"] == 1
    chats = (await client.get(f"{API}/chats", headers=tenant.headers)).json()
    assert [c["id"] for c in chats["data"]] == [ours["conversationId"]]
    messages = (await client.get(f"{API}/messages", headers=tenant.headers)).json()
    assert [m["id"] for m in messages["data"]] == [ours["id"]]


async def test_searches_and_filters_never_reach_another_organization(client, tenant, theirs, ours):
    for query in ("?search=Their", "?search=9800000001", "?search=%2B919800000001", "?tag=stolen"):
        r = await client.get(f"{API}/contacts{query}", headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"] == [], query

    # Filtering by their conversation answers exactly as filtering by one that doesn't exist.
    theirs_filtered = await client.get(
        f"{API}/messages?conversationId={theirs.ids['conversation_id']}", headers=tenant.headers
    )
    missing = await client.get(f"{API}/messages?conversationId=cnv_doesnotexist", headers=tenant.headers)
    assert theirs_filtered.status_code == missing.status_code
    assert theirs_filtered.status_code in {200, 404}, theirs_filtered.text
    if theirs_filtered.status_code == 200:
        assert theirs_filtered.json()["data"] == []
    else:
        assert theirs_filtered.json()["code"] == missing.json()["code"]
    for secret in theirs.secrets - {theirs.ids["conversation_id"]}:
        assert secret not in theirs_filtered.text


async def test_another_organizations_ids_in_a_body_are_not_found(client, tenant, theirs, ours):
    send_media = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "image", "mediaId": theirs.ids["media_id"]},
    )
    assert send_media.status_code == 404, send_media.text

    reply = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "text", "text": "re", "replyTo": theirs.ids["message_id"]},
    )
    assert reply.status_code == 404, reply.text

    react = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": CUSTOMER, "type": "reaction", "messageId": theirs.ids["message_id"], "emoji": "👍"},
    )
    assert react.status_code == 404, react.text

    inbound = await client.post(
        f"{API}/sandbox/inbound",
        headers=tenant.headers,
        json={"from": CUSTOMER, "type": "image", "mediaId": theirs.ids["media_id"]},
    )
    assert inbound.status_code == 404, inbound.text


async def test_the_same_phone_is_a_separate_contact_in_each_organization(client, tenant, other_tenant, theirs, ours):
    r = await client.post(f"{API}/contacts", headers=tenant.headers, json={"phone": "+919800000001"})

    assert r.status_code == 201, r.text
    assert r.json()["id"] != theirs.ids["contact_id"]
    assert r.json()["name"] is None
    assert ours["contactId"] not in theirs.secrets


# --- The schema: every tenant table is keyed by organization --------------------------------------

# Unique columns that are deliberately global: values we generate at random ourselves (nobody can pick
# one to probe another organization), looked up before the organization is known.
GLOBALLY_UNIQUE = {
    ("api_keys", ("prefix",)),  # authentication finds a key by its prefix, then learns the organization
}


def tenant_tables() -> list[Any]:
    tables = [
        mapper.local_table
        for mapper in Model.registry.mappers
        if issubclass(mapper.class_, TenantModel) and mapper.local_table is not None
    ]
    return sorted({table.name: table for table in tables}.values(), key=lambda table: table.name)


def test_the_walk_finds_the_tenant_tables():
    names = {table.name for table in tenant_tables()}

    assert names >= {"contacts", "conversations", "messages", "media", "api_keys", "templates"}
    assert all(table in Model.metadata.sorted_tables for table in tenant_tables())


@pytest.mark.parametrize("table", tenant_tables(), ids=lambda table: table.name)
def test_every_tenant_table_has_a_required_organization_id(table):
    column = table.columns.get("organization_id")

    assert column is not None, f"{table.name} has no organization_id"
    assert column.nullable is False, f"{table.name}.organization_id may be null"


def unique_rules_not_per_organization(table: Any) -> list[str]:
    """The unique constraints and indexes of `table` that don't include organization_id."""
    rules: list[tuple[str, tuple[str, ...]]] = []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            rules.append((str(constraint.name), tuple(column.name for column in constraint.columns)))
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            rules.append((str(index.name), tuple(column.name for column in index.columns)))
    for column in table.columns:
        if column.unique and not column.primary_key:
            rules.append((f"{table.name}.{column.name} unique", (column.name,)))
    return [
        f"{name} on {columns}"
        for name, columns in rules
        if "organization_id" not in columns
        and columns != ("id",)  # a primary-key id, unique by construction
        and (table.name, columns) not in GLOBALLY_UNIQUE
    ]


@pytest.mark.parametrize("table", tenant_tables(), ids=lambda table: table.name)
def test_every_unique_rule_of_a_tenant_table_is_per_organization(table):
    assert unique_rules_not_per_organization(table) == []


def test_the_unique_rule_check_catches_a_global_rule():
    metadata = MetaData()
    table = Table(
        "widgets",
        metadata,
        Column("id", String, primary_key=True),
        Column("organization_id", String, nullable=False),
        Column("code", String, unique=True),
        Column("name", String),
        Column("slug", String),
        UniqueConstraint("organization_id", "name"),
        Index("uq_widgets_slug", "slug", unique=True),
    )

    found = unique_rules_not_per_organization(table)

    assert any("'code'" in rule for rule in found), found
    assert any("'slug'" in rule for rule in found), found
    assert not any("'name'" in rule for rule in found), found

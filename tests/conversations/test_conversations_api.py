"""/chats: threads opened by customers, assignment and resolution, unread counts, and the window they show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from kaanha.kit.clock import clock
from kaanha.kit.ids import new_id
from kaanha.models import Membership, User
from kaanha.runtime import Runtime
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import inbound

PHONE = "+919876543210"
PHONES = ["+919811111111", "+919822222222", "+919833333333"]

CONVERSATION_FIELDS = {
    "id",
    "contact",
    "status",
    "assigneeId",
    "unreadCount",
    "lastMessageAt",
    "windowExpiresAt",
    "createdAt",
}


async def send_text(client: httpx.AsyncClient, tenant: Tenant, text: str, *, phone: str = PHONE) -> dict[str, Any]:
    response = await client.post(
        f"{API}/send", json={"to": phone, "type": "text", "text": text}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


async def get_chat(client: httpx.AsyncClient, tenant: Tenant, conversation_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/chats/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    chat: dict[str, Any] = response.json()
    return chat


async def patch_chat(client: httpx.AsyncClient, tenant: Tenant, conversation_id: str, body: Any) -> httpx.Response:
    return await client.patch(f"{API}/chats/{conversation_id}", json=body, headers=tenant.headers)


async def list_chats(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{API}/chats", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def add_member(runtime: Runtime, tenant: Tenant, email: str = "agent@example.com") -> str:
    """A user who belongs to the tenant's organization, made directly in the database."""
    user_id = new_id("usr")
    async with runtime.database.transaction() as session:
        session.add(User(id=user_id, email=email, name="Agent", password_hash="not-a-real-hash"))
        await session.flush()
        session.add(Membership(id=new_id("mem"), organization_id=tenant.organization_id, user_id=user_id, role="agent"))
    return user_id


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "code"}
    assert body["error"]
    if code is not None:
        assert body["code"] == code, body


async def test_a_customers_first_message_opens_a_conversation(client, tenant, runtime, frozen_clock):
    first = await inbound(client, tenant)

    page = await list_chats(client, tenant)
    assert page["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}
    (chat,) = page["data"]
    assert set(chat) >= CONVERSATION_FIELDS
    assert all("_" not in key for key in chat), "fields are camelCase"
    assert chat["id"] == first["conversationId"]
    assert chat["status"] == "OPEN"
    assert chat["assigneeId"] is None
    assert chat["unreadCount"] == 1
    assert chat["createdAt"] == "2026-11-24T10:00:00Z"
    assert chat["lastMessageAt"] == "2026-11-24T10:00:00Z"
    assert chat["windowExpiresAt"] == "2026-11-25T10:00:00Z"
    assert chat["windowOpen"] is True
    assert chat["contact"]["id"] == first["contactId"]
    assert chat["contact"]["phone"] == PHONE
    assert chat["contact"]["name"] == "Asha"

    clock.advance(timedelta(minutes=10))
    second = await inbound(client, tenant, text="Are you there?")
    assert second["conversationId"] == chat["id"]
    clock.advance(timedelta(minutes=1))
    reply = await send_text(client, tenant, "Yes, how can I help?")
    assert reply["conversationId"] == chat["id"]

    detail = await get_chat(client, tenant, chat["id"])
    assert detail["unreadCount"] == 2  # our own reply is not unread
    assert detail["lastMessageAt"] == "2026-11-24T10:11:00Z"
    assert detail["windowExpiresAt"] == "2026-11-25T10:10:00Z"  # from the customer's last message only
    assert [m["id"] for m in detail["messages"]] == [reply["id"], second["id"], first["id"]]
    assert (await list_chats(client, tenant))["pagination"]["total"] == 1

    clock.advance(timedelta(hours=24))
    closed = await get_chat(client, tenant, chat["id"])
    assert closed["windowOpen"] is False
    assert closed["windowExpiresAt"] == "2026-11-25T10:10:00Z"


async def test_a_customer_without_a_profile_name_has_no_name_until_one_arrives(client, tenant, runtime):
    response = await client.post(f"{API}/sandbox/inbound", json={"from": PHONE, "text": "Hi"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    conversation_id = response.json()["conversationId"]
    assert (await get_chat(client, tenant, conversation_id))["contact"]["name"] is None
    await inbound(client, tenant, name="Asha")
    assert (await get_chat(client, tenant, conversation_id))["contact"]["name"] == "Asha"


async def test_a_template_to_a_new_contact_opens_a_conversation_without_a_window(client, tenant, runtime):
    response = await client.post(
        f"{API}/send",
        json={"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    chat = await get_chat(client, tenant, response.json()["conversationId"])
    assert chat["status"] == "OPEN"
    assert chat["unreadCount"] == 0
    assert chat["windowExpiresAt"] is None
    assert chat["windowOpen"] is False
    # The customer's answer joins the same thread.
    answer = await inbound(client, tenant, text="Thanks!")
    assert answer["conversationId"] == chat["id"]
    assert (await get_chat(client, tenant, chat["id"]))["unreadCount"] == 1


async def test_list_filters_by_status_and_pages(client, tenant, runtime, frozen_clock):
    agent = await add_member(runtime, tenant)
    chats = []
    for index, phone in enumerate(PHONES):
        clock.advance(timedelta(minutes=1))
        chats.append((await inbound(client, tenant, phone=phone, name=f"Customer {index}"))["conversationId"])
    assert (await patch_chat(client, tenant, chats[0], {"assigneeId": agent})).status_code == 200
    assert (await patch_chat(client, tenant, chats[1], {"status": "RESOLVED"})).status_code == 200

    for status, expected in (("OPEN", chats[2]), ("ASSIGNED", chats[0]), ("RESOLVED", chats[1])):
        page = await list_chats(client, tenant, status=status)
        assert [c["id"] for c in page["data"]] == [expected], status
        assert page["pagination"]["total"] == 1
        assert page["data"][0]["status"] == status

    everything = await list_chats(client, tenant)
    assert [c["id"] for c in everything["data"]] == chats[::-1]  # most recent activity first

    first = await list_chats(client, tenant, limit=2)
    second = await list_chats(client, tenant, limit=2, page=2)
    assert first["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    assert second["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}
    assert [c["id"] for c in first["data"] + second["data"]] == chats[::-1]
    assert (await list_chats(client, tenant, limit=2, page=3))["data"] == []

    for params in ({"status": "CLOSED"}, {"status": "open"}, {"page": 0}, {"limit": 101}, {"limit": 0}):
        response = await client.get(f"{API}/chats", params=params, headers=tenant.headers)
        assert_error(response, 400)


async def test_detail_has_the_50_most_recent_messages_first(client, tenant, runtime, frozen_clock):
    ids = []
    for n in range(55):
        clock.advance(timedelta(seconds=1))
        if n % 2 == 0:
            ids.append((await inbound(client, tenant, text=f"customer {n}"))["id"])
        else:
            ids.append((await send_text(client, tenant, f"agent {n}"))["id"])
    conversation_id = (await list_chats(client, tenant))["data"][0]["id"]

    chat = await get_chat(client, tenant, conversation_id)

    assert len(chat["messages"]) == 50
    assert [m["id"] for m in chat["messages"]] == ids[::-1][:50]
    stamps = [m["createdAt"] for m in chat["messages"]]
    assert stamps == sorted(stamps, reverse=True)
    assert chat["messages"][0]["content"] == {"text": "customer 54"}
    assert chat["unreadCount"] == 28
    everything = await client.get(
        f"{API}/messages", params={"conversationId": conversation_id, "limit": 100}, headers=tenant.headers
    )
    assert everything.json()["pagination"]["total"] == 55


async def test_assign_unassign_resolve_and_reopen(client, tenant, runtime, frozen_clock):
    agent = await add_member(runtime, tenant)
    conversation_id = (await inbound(client, tenant))["conversationId"]

    assigned = await patch_chat(client, tenant, conversation_id, {"assigneeId": agent})
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], assigned.json()["assigneeId"]) == ("ASSIGNED", agent)
    assert "messages" in assigned.json()

    unassigned = await patch_chat(client, tenant, conversation_id, {"assigneeId": None})
    assert unassigned.status_code == 200, unassigned.text
    assert (unassigned.json()["status"], unassigned.json()["assigneeId"]) == ("OPEN", None)

    await patch_chat(client, tenant, conversation_id, {"assigneeId": agent})
    clock.advance(timedelta(minutes=5))
    resolved = await patch_chat(client, tenant, conversation_id, {"status": "RESOLVED"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "RESOLVED"
    assert resolved.json()["assigneeId"] == agent  # who handled it is kept
    assert resolved.json()["resolvedAt"] == "2026-11-24T10:05:00Z"
    assert await get_chat(client, tenant, conversation_id) == resolved.json()

    # The customer writes again: the same thread reopens, back with its assignee.
    clock.advance(timedelta(minutes=5))
    again = await inbound(client, tenant, text="One more thing")
    assert again["conversationId"] == conversation_id
    reopened = await get_chat(client, tenant, conversation_id)
    assert (reopened["status"], reopened["assigneeId"], reopened["resolvedAt"]) == ("ASSIGNED", agent, None)
    assert reopened["unreadCount"] == 2
    assert (await list_chats(client, tenant))["pagination"]["total"] == 1

    # Without an assignee it reopens OPEN.
    opened = await patch_chat(client, tenant, conversation_id, {"status": "OPEN"})
    assert (opened.json()["status"], opened.json()["assigneeId"]) == ("OPEN", None)
    await patch_chat(client, tenant, conversation_id, {"status": "RESOLVED"})
    await inbound(client, tenant, text="Hello?")
    assert (await get_chat(client, tenant, conversation_id))["status"] == "OPEN"

    # Resolving and reopening by hand.
    await patch_chat(client, tenant, conversation_id, {"status": "RESOLVED"})
    manual = await patch_chat(client, tenant, conversation_id, {"status": "ASSIGNED", "assigneeId": agent})
    assert manual.status_code == 200, manual.text
    assert (manual.json()["status"], manual.json()["assigneeId"], manual.json()["resolvedAt"]) == (
        "ASSIGNED",
        agent,
        None,
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"assigneeId": "usr_nobody"}, 404, "assignee_not_found"),
        ({"status": "ASSIGNED"}, 400, "invalid_status_change"),
        ({"status": "ASSIGNED", "assigneeId": None}, 400, None),
        ({}, 400, None),
        ({"status": None}, 400, None),
        ({"status": "CLOSED"}, 400, "validation_error"),
        ({"status": "resolved"}, 400, "validation_error"),
        ({"owner": "someone"}, 400, "validation_error"),
        (["RESOLVED"], 400, "validation_error"),
    ],
)
async def test_invalid_changes_are_refused_and_change_nothing(client, tenant, runtime, body, status, code):
    conversation_id = (await inbound(client, tenant))["conversationId"]
    before = await get_chat(client, tenant, conversation_id)

    assert_error(await patch_chat(client, tenant, conversation_id, body), status, code)

    assert await get_chat(client, tenant, conversation_id) == before


async def test_only_members_of_the_organization_can_be_assigned(client, tenant, other_tenant, runtime):
    outsider = await add_member(runtime, other_tenant, email="outsider@example.com")
    agent = await add_member(runtime, tenant)
    conversation_id = (await inbound(client, tenant))["conversationId"]
    await patch_chat(client, tenant, conversation_id, {"assigneeId": agent})
    before = await get_chat(client, tenant, conversation_id)

    assert_error(await patch_chat(client, tenant, conversation_id, {"assigneeId": outsider}), 404, "assignee_not_found")
    assert await get_chat(client, tenant, conversation_id) == before
    # OPEN means nobody's, so it can't come with an assignee.
    assert_error(await patch_chat(client, tenant, conversation_id, {"status": "OPEN", "assigneeId": agent}), 400)
    assert await get_chat(client, tenant, conversation_id) == before


async def test_marking_read_resets_the_unread_count(client, tenant, runtime):
    for text in ("Hi", "Is anyone there?", "Hello?"):
        conversation_id = (await inbound(client, tenant, text=text))["conversationId"]
    assert (await get_chat(client, tenant, conversation_id))["unreadCount"] == 3

    response = await client.post(f"{API}/chats/{conversation_id}/read", headers=tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json()["unreadCount"] == 0
    assert (await get_chat(client, tenant, conversation_id))["unreadCount"] == 0
    assert (await list_chats(client, tenant))["data"][0]["unreadCount"] == 0
    await inbound(client, tenant, text="Thanks")
    assert (await get_chat(client, tenant, conversation_id))["unreadCount"] == 1


async def test_our_message_to_a_resolved_conversation_does_not_reopen_it(client, tenant, runtime):
    conversation_id = (await inbound(client, tenant))["conversationId"]
    await client.post(f"{API}/chats/{conversation_id}/read", headers=tenant.headers)
    await patch_chat(client, tenant, conversation_id, {"status": "RESOLVED"})

    follow_up = await send_text(client, tenant, "Glad we could help!")

    assert follow_up["conversationId"] == conversation_id
    chat = await get_chat(client, tenant, conversation_id)
    assert chat["status"] == "RESOLVED"
    assert chat["unreadCount"] == 0
    assert chat["messages"][0]["id"] == follow_up["id"]
    assert (await list_chats(client, tenant, status="OPEN"))["data"] == []
    assert [c["id"] for c in (await list_chats(client, tenant, status="RESOLVED"))["data"]] == [conversation_id]


async def test_another_organizations_conversation_is_not_found(client, tenant, other_tenant, runtime):
    theirs = (await inbound(client, other_tenant))["conversationId"]
    before = await get_chat(client, other_tenant, theirs)

    assert_error(await client.get(f"{API}/chats/{theirs}", headers=tenant.headers), 404, "conversation_not_found")
    assert_error(await patch_chat(client, tenant, theirs, {"status": "RESOLVED"}), 404, "conversation_not_found")
    response = await client.post(f"{API}/chats/{theirs}/read", headers=tenant.headers)
    assert_error(response, 404, "conversation_not_found")
    assert_error(await client.get(f"{API}/chats/cnv_nope", headers=tenant.headers), 404, "conversation_not_found")

    assert (await list_chats(client, tenant))["data"] == []
    assert await get_chat(client, other_tenant, theirs) == before


async def test_conversation_scopes(client, runtime):
    full = await make_tenant(runtime, "Full")
    reader = await make_tenant(runtime, "Reader", scopes=["conversations:read"])
    conversation_id = (await inbound(client, full))["conversationId"]
    assert (await client.get(f"{API}/chats", headers=reader.headers)).status_code == 200
    assert_error(await patch_chat(client, reader, conversation_id, {"status": "RESOLVED"}), 403)
    assert_error(await client.get(f"{API}/chats"), 401)

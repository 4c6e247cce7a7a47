"""Events: every change emits one, in its own transaction, showing the resource as the API's GET does.

Each test makes the change through the API (the sandbox, `POST /send` and the worker, or Meta's signed
webhooks), then reads the `events` table and compares each event's `data` with what GET answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from kaanha.contacts.schemas import ContactCreate
from kaanha.contacts.service import create_contact
from kaanha.events import types
from kaanha.events.service import body
from kaanha.kit.clock import clock
from kaanha.kit.ids import new_id
from kaanha.messages.repository import MessageRepository
from kaanha.messages.tasks import fail_abandoned_send
from kaanha.models import (
    Contact,
    Event,
    Job,
    Membership,
    Template,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WhatsAppConnection,
)
from kaanha.runtime import Runtime
from kaanha.whatsapp import inbound as inbound_pipeline
from kaanha.whatsapp.inbound import process_payload
from kaanha.whatsapp.sandbox.payloads import envelope, new_wamid
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant
from tests.helpers import inbound
from tests.whatsapp.test_meta_webhooks import (
    DELIVERED_AT,
    OUR_NUMBER,
    READ_AT,
    SENT_AT,
    WAMID,
    add_template,
    connect_cloud_api,
    deliver,
    load,
    outbound_message,
    routed,
    status_payload,
)

PHONE = "+919876543210"
OTHER_PHONE = "+919812345678"
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TEMPLATE_WABA = "102290129340398"  # the WABA of the template_*.json payloads
TEMPLATE_ID = "1689556908129832"


# --- reading events and resources ------------------------------------------------------------------


async def events(runtime: Runtime, tenant: Tenant) -> list[Event]:
    """The organization's events, oldest first."""
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.organization_id == tenant.organization_id).order_by(Event.seq)
        )
        return list(rows)


async def new_events(runtime: Runtime, tenant: Tenant, seen: list[Event]) -> list[Event]:
    return (await events(runtime, tenant))[len(seen) :]


def kinds(found: list[Event]) -> list[str]:
    return [event.type for event in found]


async def get(client: httpx.AsyncClient, tenant: Tenant, path: str) -> dict[str, Any]:
    response = await client.get(f"{API}{path}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def chat(client: httpx.AsyncClient, tenant: Tenant, conversation_id: str) -> dict[str, Any]:
    """A conversation as `GET /chats/{id}` shows it, without the recent messages it adds to the list's shape."""
    found = await get(client, tenant, f"/chats/{conversation_id}")
    del found["messages"]
    return found


async def send(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}/send", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


HELLO_WORLD = {"type": "template", "templateName": "hello_world", "language": "en_US", "components": []}


# --- contacts ----------------------------------------------------------------------------------------


async def test_creating_a_contact_emits_contact_created_once(client, tenant, runtime, frozen_clock):
    request = {"phone": PHONE, "name": "Asha", "tags": ["vip", "b2b"], "attributes": {"city": "Pune"}}
    headers = {**tenant.headers, "Idempotency-Key": "create-asha"}
    response = await client.post(f"{API}/contacts", json=request, headers=headers)
    assert response.status_code == 201, response.text
    # A retry with the same key replays the answer and changes nothing, so it tells no one again.
    replay = await client.post(f"{API}/contacts", json=request, headers=headers)
    assert replay.json() == response.json()

    (created,) = await events(runtime, tenant)
    assert created.type == types.CONTACT_CREATED
    assert created.data == await get(client, tenant, f"/contacts/{response.json()['id']}") == response.json()
    assert body(created)["timestamp"] == iso(START)
    assert body(created)["id"] == created.id


async def test_patching_a_contact_emits_contact_updated_when_it_changes(client, tenant, runtime, frozen_clock):
    created = (await client.post(f"{API}/contacts", json={"phone": PHONE}, headers=tenant.headers)).json()
    await client.post(f"{API}/contacts", json={"phone": OTHER_PHONE}, headers=tenant.headers)
    seen = await events(runtime, tenant)
    path = f"{API}/contacts/{created['id']}"

    clock.advance(timedelta(minutes=1))
    changed = await client.patch(path, json={"name": "Asha", "tags": ["vip"]}, headers=tenant.headers)
    assert changed.status_code == 200, changed.text
    (updated,) = await new_events(runtime, tenant, seen)
    assert updated.type == types.CONTACT_UPDATED
    assert updated.data == await get(client, tenant, f"/contacts/{created['id']}")
    assert updated.data["tags"] == ["vip"]
    assert body(updated)["timestamp"] == iso(START + timedelta(minutes=1))

    seen = await events(runtime, tenant)
    same = await client.patch(path, json={"name": "Asha", "tags": ["vip"]}, headers=tenant.headers)
    assert same.status_code == 200
    taken = await client.patch(path, json={"phone": OTHER_PHONE, "name": "Someone else"}, headers=tenant.headers)
    assert taken.status_code == 409
    assert await new_events(runtime, tenant, seen) == []


async def test_deleting_a_contact_emits_it_as_it_was(client, tenant, runtime, frozen_clock):
    message = await inbound(client, tenant, phone=PHONE, name="Asha")
    await client.patch(f"{API}/contacts/{message['contactId']}", json={"tags": ["vip"]}, headers=tenant.headers)
    before = await get(client, tenant, f"/contacts/{message['contactId']}")
    seen = await events(runtime, tenant)

    response = await client.delete(f"{API}/contacts/{message['contactId']}", headers=tenant.headers)
    assert response.status_code == 204

    (deleted,) = await new_events(runtime, tenant, seen)
    assert deleted.type == types.CONTACT_DELETED
    assert deleted.data == before


# --- inbound messages ---------------------------------------------------------------------------------


async def test_a_first_inbound_message_emits_contact_conversation_and_message(client, tenant, runtime, frozen_clock):
    message = await inbound(client, tenant, phone=PHONE, name="Asha", text="Hi")

    contact_created, conversation_created, received = await events(runtime, tenant)
    assert kinds([contact_created, conversation_created, received]) == [
        types.CONTACT_CREATED,
        types.CONVERSATION_CREATED,
        types.MESSAGE_RECEIVED,
    ]
    contact = await get(client, tenant, f"/contacts/{message['contactId']}")
    assert contact_created.data == contact
    assert contact["name"] == "Asha"
    assert contact["lastMessageAt"] == iso(START)
    conversation = await chat(client, tenant, message["conversationId"])
    assert conversation_created.data == conversation
    assert (conversation["status"], conversation["unreadCount"], conversation["windowOpen"]) == ("OPEN", 1, True)
    assert received.data == message == await get(client, tenant, f"/messages/{message['id']}")
    assert {body(event)["timestamp"] for event in (contact_created, conversation_created, received)} == {iso(START)}

    # The next message moves lastMessageAt and the unread count: neither is worth an event of its own.
    clock.advance(timedelta(minutes=2))
    seen = await events(runtime, tenant)
    second = await inbound(client, tenant, phone=PHONE, name="Asha", text="Are you there?")
    (received,) = await new_events(runtime, tenant, seen)
    assert received.type == types.MESSAGE_RECEIVED
    assert received.data == second == await get(client, tenant, f"/messages/{second['id']}")
    assert body(received)["timestamp"] == iso(START + timedelta(minutes=2))


async def test_a_profile_name_naming_a_nameless_contact_is_contact_updated(client, tenant, runtime, frozen_clock):
    created = (await client.post(f"{API}/contacts", json={"phone": PHONE}, headers=tenant.headers)).json()
    seen = await events(runtime, tenant)

    clock.advance(timedelta(minutes=1))
    await inbound(client, tenant, phone=PHONE, name="Asha")

    updated, conversation_created, received = await new_events(runtime, tenant, seen)
    assert kinds([updated, conversation_created, received]) == [
        types.CONTACT_UPDATED,
        types.CONVERSATION_CREATED,
        types.MESSAGE_RECEIVED,
    ]
    assert updated.data == await get(client, tenant, f"/contacts/{created['id']}")
    assert updated.data["name"] == "Asha"

    # A different profile name later never replaces the name: nothing changes, nothing is told.
    seen = await events(runtime, tenant)
    await inbound(client, tenant, phone=PHONE, name="Asha K.")
    assert kinds(await new_events(runtime, tenant, seen)) == [types.MESSAGE_RECEIVED]


async def test_a_duplicate_or_lost_inbound_message_emits_nothing(client, tenant, runtime, frozen_clock, monkeypatch):
    """A copy of a stored message, or one a concurrent copy stored first, leaves no event behind."""
    connection = await sandbox_connection(runtime, tenant)
    lost_wamid, kept_wamid = new_wamid(), new_wamid()
    payload = text_payload(connection, (PHONE, lost_wamid), (OTHER_PHONE, kept_wamid))
    add_unless_taken = MessageRepository.add_unless_taken

    async def stored_by_a_concurrent_copy(self, row):  # type: ignore[no-untyped-def]
        if row.whatsapp_message_id == lost_wamid:
            return False
        return await add_unless_taken(self, row)

    monkeypatch.setattr(MessageRepository, "add_unless_taken", stored_by_a_concurrent_copy)
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, payload)
    assert summary.duplicates == 1
    monkeypatch.undo()

    # The lost message's savepoint took its contact and conversation, and their events, with it.
    found = await events(runtime, tenant)
    assert kinds(found) == [types.CONTACT_CREATED, types.CONVERSATION_CREATED, types.MESSAGE_RECEIVED]
    assert {event.data.get("phone") or event.data["contact"]["phone"] for event in found[:2]} == {OTHER_PHONE}
    assert found[2].data["whatsappMessageId"] == kept_wamid

    # Meta sends the same messages again: stored already, so no event.
    async with runtime.database.transaction() as session:
        await process_payload(session, text_payload(connection, (OTHER_PHONE, kept_wamid)))
    assert [event.id for event in await events(runtime, tenant)] == [event.id for event in found]


async def test_a_message_from_metas_webhook_emits_like_the_sandbox_does(client, tenant, runtime, frozen_clock):
    await connect_cloud_api(runtime, tenant)
    payload = routed(load("inbound_text.json"), OUR_NUMBER)

    await deliver(client, runtime, payload)

    contact_created, conversation_created, received = await events(runtime, tenant)
    assert kinds([contact_created, conversation_created, received]) == [
        types.CONTACT_CREATED,
        types.CONVERSATION_CREATED,
        types.MESSAGE_RECEIVED,
    ]
    message = await get(client, tenant, f"/messages/{received.data['id']}")
    assert received.data == message
    assert message["content"] == {"text": "Does it come in another color?"}
    assert contact_created.data == await get(client, tenant, f"/contacts/{message['contactId']}")
    assert contact_created.data["name"] == "Sheena Nelson"
    assert conversation_created.data == await chat(client, tenant, message["conversationId"])

    # Meta delivers it again inside another payload: the message is stored already, nothing is emitted.
    payload["entry"][0]["time"] = 1749416400
    await deliver(client, runtime, payload)
    assert len(await events(runtime, tenant)) == 3


# --- outbound messages and their statuses ----------------------------------------------------------------


async def test_a_send_to_a_new_number_and_its_sandbox_statuses(client, tenant, runtime, frozen_clock):
    queued = await send(client, tenant, {"to": PHONE, **HELLO_WORLD})

    contact_created, conversation_created = await events(runtime, tenant)
    assert contact_created.type == types.CONTACT_CREATED
    assert contact_created.data == await get(client, tenant, f"/contacts/{queued['contactId']}")
    assert contact_created.data["lastMessageAt"] == iso(START)
    assert conversation_created.type == types.CONVERSATION_CREATED
    assert conversation_created.data == await chat(client, tenant, queued["conversationId"])

    # The worker hands it to the sandbox (sent), whose status webhooks follow after 1 s and 3 s.
    for step, expected in ((0, types.MESSAGE_SENT), (1, types.MESSAGE_DELIVERED), (2, types.MESSAGE_READ)):
        clock.advance(timedelta(seconds=step))
        seen = await events(runtime, tenant)
        await drain(runtime)
        (moved,) = await new_events(runtime, tenant, seen)
        assert moved.type == expected
        assert moved.data == await get(client, tenant, f"/messages/{queued['id']}")
        assert moved.data["status"] == expected.removeprefix("message.")
        assert body(moved)["timestamp"] == iso(clock.now())


async def test_a_send_the_provider_refuses_emits_message_failed_with_the_error(client, tenant, runtime, frozen_clock):
    await inbound(client, tenant, phone=PHONE)
    queued = await send(client, tenant, {"to": PHONE, "type": "text", "text": "Hello"})
    seen = await events(runtime, tenant)

    clock.advance(timedelta(hours=25))  # the window closed before the worker got to it
    await drain(runtime)

    (failed,) = await new_events(runtime, tenant, seen)
    assert failed.type == types.MESSAGE_FAILED
    assert failed.data == await get(client, tenant, f"/messages/{queued['id']}")
    assert failed.data["error"]["code"] == 131047
    assert set(failed.data["error"]) == {"code", "message", "explanation"}
    assert failed.data["error"]["explanation"]


async def test_cloud_api_statuses_emit_each_move_once_whatever_their_order_or_copies(
    client, tenant, runtime, frozen_clock
):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)
    seen = await events(runtime, tenant)

    await deliver(client, runtime, status_payload("delivered", WAMID, DELIVERED_AT))
    (delivered,) = await new_events(runtime, tenant, seen)
    assert delivered.type == types.MESSAGE_DELIVERED
    assert delivered.data == await get(client, tenant, f"/messages/{message_id}")
    assert delivered.data["deliveredAt"] == iso(DELIVERED_AT)

    # Copies (Meta's retries, other bytes) and late statuses move nothing, so they emit nothing.
    seen = await events(runtime, tenant)
    clock.advance(timedelta(minutes=1))
    await deliver(client, runtime, status_payload("delivered", WAMID, DELIVERED_AT + timedelta(seconds=30)))
    await deliver(client, runtime, status_payload("sent", WAMID, SENT_AT))
    assert await new_events(runtime, tenant, seen) == []

    await deliver(client, runtime, status_payload("read", WAMID, READ_AT))
    await deliver(client, runtime, status_payload("read", WAMID, READ_AT + timedelta(seconds=1)))
    await deliver(client, runtime, status_payload("delivered", WAMID, READ_AT))
    (read,) = await new_events(runtime, tenant, seen)
    assert read.type == types.MESSAGE_READ
    assert read.data == await get(client, tenant, f"/messages/{message_id}")


async def test_a_batch_of_copies_of_one_status_emits_once(client, tenant, runtime, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)
    payload = status_payload("read", WAMID, READ_AT)
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses.extend([dict(statuses[0]), {**statuses[0], "status": "delivered"}, dict(statuses[0])])
    seen = await events(runtime, tenant)

    await deliver(client, runtime, payload)

    (read,) = await new_events(runtime, tenant, seen)
    assert read.type == types.MESSAGE_READ
    assert read.data == await get(client, tenant, f"/messages/{message_id}")


async def test_a_failed_status_emits_message_failed_with_metas_error(client, tenant, runtime, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)
    seen = await events(runtime, tenant)

    await deliver(client, runtime, status_payload("failed", WAMID, DELIVERED_AT))
    await deliver(client, runtime, status_payload("failed", WAMID, READ_AT))  # a copy

    (failed,) = await new_events(runtime, tenant, seen)
    assert failed.type == types.MESSAGE_FAILED
    assert failed.data == await get(client, tenant, f"/messages/{message_id}")
    error = failed.data["error"]
    assert error["code"] == 131049
    assert (
        error["message"] == "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    )
    assert "marketing" in error["explanation"]


async def test_a_lost_send_adopted_by_its_status_webhook_emits_that_status(client, tenant, runtime, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=None)
    await connect_cloud_api(runtime, tenant)
    seen = await events(runtime, tenant)

    await deliver(client, runtime, status_payload("sent", WAMID, SENT_AT, callback=message_id))

    (sent,) = await new_events(runtime, tenant, seen)
    assert sent.type == types.MESSAGE_SENT
    assert sent.data == await get(client, tenant, f"/messages/{message_id}")
    assert sent.data["whatsappMessageId"] == WAMID


async def test_a_send_given_up_as_unconfirmed_then_confirmed_by_meta(client, tenant, runtime, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=None)
    await connect_cloud_api(runtime, tenant)
    seen = await events(runtime, tenant)
    job = Job(id=new_id("job"), organization_id=tenant.organization_id, payload={"messageId": message_id})
    async with runtime.database.transaction() as session:
        await fail_abandoned_send(session, runtime, job, RuntimeError("the send outlasted every retry"))

    (failed,) = await new_events(runtime, tenant, seen)
    assert failed.type == types.MESSAGE_FAILED
    assert failed.data == await get(client, tenant, f"/messages/{message_id}")
    assert failed.data["error"]["message"] == inbound_pipeline.UNCONFIRMED

    # Meta's status webhook names it after all: its word replaces the failure.
    seen = await events(runtime, tenant)
    await deliver(client, runtime, status_payload("delivered", WAMID, DELIVERED_AT, callback=message_id))
    (delivered,) = await new_events(runtime, tenant, seen)
    assert delivered.type == types.MESSAGE_DELIVERED
    assert delivered.data == await get(client, tenant, f"/messages/{message_id}")
    assert (delivered.data["error"], delivered.data["whatsappMessageId"]) == (None, WAMID)


# --- conversations -----------------------------------------------------------------------------------------


async def add_member(runtime: Runtime, tenant: Tenant) -> str:
    user_id = new_id("usr")
    async with runtime.database.transaction() as session:
        session.add(User(id=user_id, email="agent@example.com", name="Agent", password_hash="not-a-real-hash"))
        await session.flush()
        session.add(Membership(id=new_id("mem"), organization_id=tenant.organization_id, user_id=user_id, role="agent"))
    return user_id


async def test_assigning_resolving_and_reopening_emit_conversation_updated(client, tenant, runtime, frozen_clock):
    message = await inbound(client, tenant, phone=PHONE)
    conversation_id = message["conversationId"]
    agent = await add_member(runtime, tenant)
    path = f"{API}/chats/{conversation_id}"

    async def patch(change: dict[str, Any]) -> list[Event]:
        seen = await events(runtime, tenant)
        response = await client.patch(path, json=change, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return await new_events(runtime, tenant, seen)

    (assigned,) = await patch({"assigneeId": agent})
    assert assigned.type == types.CONVERSATION_UPDATED
    assert assigned.data == await chat(client, tenant, conversation_id)
    assert (assigned.data["status"], assigned.data["assigneeId"]) == ("ASSIGNED", agent)

    assert await patch({"assigneeId": agent}) == []  # already theirs
    seen = await events(runtime, tenant)
    read = await client.post(f"{path}/read", headers=tenant.headers)
    assert read.status_code == 200
    assert await new_events(runtime, tenant, seen) == []  # unread counts are no event

    clock.advance(timedelta(minutes=5))
    (resolved,) = await patch({"status": "RESOLVED"})
    assert resolved.data == await chat(client, tenant, conversation_id)
    assert (resolved.data["status"], resolved.data["resolvedAt"]) == ("RESOLVED", iso(clock.now()))

    # The customer writes again: the thread reopens, back to its assignee.
    seen = await events(runtime, tenant)
    await inbound(client, tenant, phone=PHONE, text="One more thing")
    reopened, received = await new_events(runtime, tenant, seen)
    assert kinds([reopened, received]) == [types.CONVERSATION_UPDATED, types.MESSAGE_RECEIVED]
    assert reopened.data == await chat(client, tenant, conversation_id)
    assert (reopened.data["status"], reopened.data["assigneeId"], reopened.data["resolvedAt"]) == (
        "ASSIGNED",
        agent,
        None,
    )

    # Our own message to a resolved thread doesn't reopen it: nothing to tell.
    await patch({"status": "RESOLVED"})
    seen = await events(runtime, tenant)
    await send(client, tenant, {"to": PHONE, "type": "text", "text": "Anything else?"})
    assert await new_events(runtime, tenant, seen) == []


# --- templates -------------------------------------------------------------------------------------------


def template_change(field: str, value: dict[str, Any], *, at: int) -> dict[str, Any]:
    """Meta's template event for TEMPLATE_WABA: `at` (entry.time) makes each copy's bytes differ."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": TEMPLATE_WABA, "time": at, "changes": [{"field": field, "value": value}]}],
    }


async def test_template_status_quality_and_category_changes_emit_template_updated(client, tenant, runtime):
    await connect_cloud_api(runtime, tenant, waba_id=TEMPLATE_WABA)
    template_id = await add_template(
        runtime, tenant, name="order_confirmation", language="en-US", external_id=TEMPLATE_ID
    )
    approved = load("template_status_approved.json")
    about = {
        "message_template_id": int(TEMPLATE_ID),
        "message_template_name": "order_confirmation",
        "message_template_language": "en-US",
    }

    await deliver(client, runtime, approved)
    (updated,) = await events(runtime, tenant)
    assert updated.type == types.TEMPLATE_UPDATED
    assert updated.data == {
        "id": template_id,
        "name": "order_confirmation",
        "language": "en-US",
        "category": "UTILITY",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Your order {{1}} is confirmed"}],
        "rejectedReason": None,
        "qualityScore": None,
        "parameterFormat": "POSITIONAL",
        "createdAt": updated.data["createdAt"],
        "updatedAt": updated.data["updatedAt"],
    }

    # The same verdict again (Meta repeats itself) changes nothing, so it tells no one.
    approved["entry"][0]["time"] += 60
    await deliver(client, runtime, approved)
    assert len(await events(runtime, tenant)) == 1

    quality = {**about, "previous_quality_score": "UNKNOWN", "new_quality_score": "GREEN"}
    await deliver(client, runtime, template_change("message_template_quality_update", quality, at=1751247600))
    category = {**about, "new_category": "MARKETING"}
    await deliver(client, runtime, template_change("template_category_update", category, at=1751247700))
    await deliver(client, runtime, template_change("template_category_update", category, at=1751247800))

    _, rated, recategorized = await events(runtime, tenant)
    assert (rated.type, rated.data["qualityScore"], rated.data["category"]) == (
        types.TEMPLATE_UPDATED,
        "GREEN",
        "UTILITY",
    )
    assert (recategorized.data["qualityScore"], recategorized.data["category"]) == ("GREEN", "MARKETING")
    async with runtime.database.sessions() as session:
        stored = await session.get(Template, template_id)
    assert stored is not None
    assert (stored.status, stored.quality_score, stored.category) == ("APPROVED", "GREEN", "MARKETING")


async def test_a_rejection_emits_the_reason(client, tenant, runtime):
    await connect_cloud_api(runtime, tenant, waba_id=TEMPLATE_WABA)
    await add_template(
        runtime, tenant, name="abandoned_cart", language="en", category="MARKETING", external_id="1689556908129835"
    )

    await deliver(client, runtime, routed(load("template_status_rejected.json"), "unused", waba_id=TEMPLATE_WABA))

    (rejected,) = await events(runtime, tenant)
    assert rejected.data["status"] == "REJECTED"
    assert rejected.data["rejectedReason"].startswith("Your template has parameters placed next to each other")


# --- transactions ----------------------------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_a_change_rolled_back_leaves_no_event(tenant, runtime):
    async def create_then_fail() -> None:
        async with runtime.database.transaction() as session:
            await create_contact(session, organization_id=tenant.organization_id, data=ContactCreate(phone=PHONE))
            await session.flush()
            assert await session.scalar(select(Event.type)) == types.CONTACT_CREATED  # written, not committed
            raise Boom

    with pytest.raises(Boom):
        await create_then_fail()

    assert await events(runtime, tenant) == []
    async with runtime.database.sessions() as session:
        assert await session.scalar(select(Contact.id)) is None


async def test_an_inbound_batch_retried_after_a_busy_database_emits_each_event_once(
    tenant, runtime, frozen_clock, monkeypatch
):
    connection = await sandbox_connection(runtime, tenant)
    first, second = new_wamid(), new_wamid()
    # Applied in sender order: OTHER_PHONE's message first, then PHONE's finds the database busy.
    payload = text_payload(connection, (OTHER_PHONE, first), (PHONE, second))
    record = inbound_pipeline.record_inbound

    async def busy_for_the_second(session, **fields):  # type: ignore[no-untyped-def]
        if fields["whatsapp_message_id"] == second:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return await record(session, **fields)

    monkeypatch.setattr(inbound_pipeline, "record_inbound", busy_for_the_second)
    with pytest.raises(OperationalError):
        async with runtime.database.transaction() as session:
            await process_payload(session, payload)
    assert await events(runtime, tenant) == []  # the first message's events went with its transaction

    monkeypatch.setattr(inbound_pipeline, "record_inbound", record)
    async with runtime.database.transaction() as session:
        await process_payload(session, payload)
    found = await events(runtime, tenant)
    assert kinds(found) == [types.CONTACT_CREATED, types.CONVERSATION_CREATED, types.MESSAGE_RECEIVED] * 2
    assert [event.data["whatsappMessageId"] for event in found[2::3]] == [first, second]


# --- deliveries to webhook endpoints -------------------------------------------------------------------------


async def add_endpoint(runtime: Runtime, tenant: Tenant, wanted: list[str], *, enabled: bool = True) -> str:
    endpoint_id = new_id("whe")
    async with runtime.database.transaction() as session:
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                organization_id=tenant.organization_id,
                url="https://hooks.example.com/kaanha",
                events=wanted,
                enabled=enabled,
                secret_encrypted=runtime.secret_box.encrypt("whsec_" + "a" * 32),
            )
        )
    return endpoint_id


async def deliveries(runtime: Runtime, endpoint_id: str) -> list[WebhookDelivery]:
    async with runtime.database.sessions() as session:
        rows = await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id).order_by(WebhookDelivery.id)
        )
        return list(rows)


async def test_deliveries_go_only_to_enabled_subscribed_endpoints_of_the_organization(
    client, tenant, other_tenant, runtime, frozen_clock
):
    messages_only = await add_endpoint(runtime, tenant, [types.MESSAGE_RECEIVED, types.MESSAGE_READ])
    everything = await add_endpoint(runtime, tenant, ["*"])
    disabled = await add_endpoint(runtime, tenant, ["*"], enabled=False)
    contacts_only = await add_endpoint(runtime, tenant, [types.CONTACT_CREATED, types.CONTACT_DELETED])
    theirs = await add_endpoint(runtime, other_tenant, ["*"])

    await inbound(client, tenant, phone=PHONE)

    emitted = {event.type: event for event in await events(runtime, tenant)}
    assert set(emitted) == {types.CONTACT_CREATED, types.CONVERSATION_CREATED, types.MESSAGE_RECEIVED}
    wanted = {
        messages_only: {types.MESSAGE_RECEIVED},
        everything: set(emitted),
        disabled: set(),
        contacts_only: {types.CONTACT_CREATED},
        theirs: set(),
    }
    for endpoint_id, types_wanted in wanted.items():
        found = await deliveries(runtime, endpoint_id)
        assert {delivery.event_type for delivery in found} == types_wanted, endpoint_id
        for delivery in found:
            event = emitted[delivery.event_type]
            assert (delivery.event_id, delivery.organization_id) == (event.id, tenant.organization_id)
            assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, START)

    # The other organization's events reach its own endpoint only.
    await inbound(client, other_tenant, phone=PHONE)
    assert len(await deliveries(runtime, theirs)) == 3
    assert len(await deliveries(runtime, everything)) == 3


# --- sandbox payloads built in the test --------------------------------------------------------------------


async def sandbox_connection(runtime: Runtime, tenant: Tenant) -> WhatsAppConnection:
    async with runtime.database.sessions() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
    assert connection is not None
    return connection


def text_payload(connection: WhatsAppConnection, *messages: tuple[str, str]) -> dict[str, Any]:
    """One webhook carrying a text from each (phone, wamid), as the sandbox (and Meta) shape it."""
    at = str(int(clock.now().timestamp()))
    return envelope(
        connection,
        {
            "contacts": [{"profile": {"name": "Asha"}, "wa_id": phone.lstrip("+")} for phone, _ in messages],
            "messages": [
                {"from": phone.lstrip("+"), "id": wamid, "timestamp": at, "type": "text", "text": {"body": "Hi"}}
                for phone, wamid in messages
            ],
        },
    )

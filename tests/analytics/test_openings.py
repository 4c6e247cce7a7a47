"""Conversation openings follow the conversation through the real paths: messages, assignment, resolution.

Analytics' response and resolution times are read from these rows, so each step a person or a
customer takes is checked here on the row itself.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from kaanha.conversations.openings import add_openings, new_opening
from kaanha.conversations.schemas import ConversationUpdate
from kaanha.conversations.service import thread_for_message, update_conversation
from kaanha.kit.clock import clock
from kaanha.messages.schemas import SendRequest
from kaanha.messages.service import queue_broadcast_messages, send_message
from kaanha.models import Contact, Conversation, ConversationOpening, Message
from tests.analytics.seed import Seeder
from tests.conftest import API
from tests.helpers import PHONE, inbound


async def openings(runtime, conversation_id: str) -> list[ConversationOpening]:  # type: ignore[no-untyped-def]
    async with runtime.database.sessions() as session:
        return list(
            await session.scalars(
                select(ConversationOpening)
                .where(ConversationOpening.conversation_id == conversation_id)
                .order_by(ConversationOpening.opened_at)
            )
        )


async def members(runtime, tenant) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    async with runtime.database.transaction() as session:
        seed = Seeder(session, tenant.organization_id)
        return await seed.person("Asha"), await seed.person("Bilal"), await seed.person("Chitra", role="owner")


async def send(client, tenant, text: str = "On it") -> None:  # type: ignore[no-untyped-def]
    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, "type": "text", "text": text})
    assert r.status_code == 201, r.text


async def patch(client, tenant, conversation_id: str, body: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    r = await client.patch(f"{API}/chats/{conversation_id}", headers=tenant.headers, json=body)
    assert r.status_code == 200, r.text


async def test_an_opening_records_first_response_assignment_and_resolution(client, runtime, tenant, frozen_clock):
    asha, bilal, chitra = await members(runtime, tenant)
    start = frozen_clock

    conversation_id = (await inbound(client, tenant))["conversationId"]
    clock.advance(timedelta(seconds=90))
    await send(client, tenant)  # the first response, through an API key: nobody in particular
    clock.advance(timedelta(seconds=30))
    async with runtime.database.transaction() as session:
        sent = await send_message(
            session,
            runtime=runtime,
            organization_id=tenant.organization_id,
            request=SendRequest(to=PHONE, type="text", text="Asha here"),
            sent_by_user_id=asha,
        )
    await inbound(client, tenant, text="Thanks")  # not the first inbound any more
    clock.advance(timedelta(seconds=30))
    await patch(client, tenant, conversation_id, {"assigneeId": asha})  # start + 150 s
    clock.advance(timedelta(seconds=50))
    await patch(client, tenant, conversation_id, {"assigneeId": bilal})  # reassigned: still assigned since 150 s
    clock.advance(timedelta(seconds=100))
    async with runtime.database.transaction() as session:
        await update_conversation(
            session,
            organization_id=tenant.organization_id,
            conversation_id=conversation_id,
            data=ConversationUpdate(status="RESOLVED"),
            user_id=chitra,
        )

    (row,) = await openings(runtime, conversation_id)
    assert (row.opened_at, row.first_inbound_at) == (start, start)
    assert (row.first_response_at, row.first_responder_user_id) == (start + timedelta(seconds=90), None)
    # First assigned to Asha (credited to her), handed to Bilal, who holds it at resolution.
    assert (row.assigned_at, row.first_assignee_id, row.assignee_id) == (start + timedelta(seconds=150), asha, bilal)
    assert (row.opened_by, row.backfilled) == ("customer", False)
    assert (row.resolved_at, row.resolved_by_user_id) == (start + timedelta(seconds=300), chitra)
    async with runtime.database.sessions() as session:
        assert (await session.get(Message, sent.id)).sent_by_user_id == asha  # type: ignore[union-attr]

    # The customer writes again: the thread reopens back to Bilal, a new opening assigned from then.
    clock.advance(timedelta(hours=1))
    reopened_at = start + timedelta(seconds=300, hours=1)
    await inbound(client, tenant, text="One more thing")
    await inbound(client, tenant, text="STOP")  # its confirmation answers nobody: not a response
    clock.advance(timedelta(seconds=45))
    async with runtime.database.transaction() as session:
        await send_message(
            session,
            runtime=runtime,
            organization_id=tenant.organization_id,
            request=SendRequest(to=PHONE, type="text", text="Bilal here"),
            sent_by_user_id=bilal,
        )
    await patch(client, tenant, conversation_id, {"status": "OPEN"})  # back to the queue: nobody's

    first, second = await openings(runtime, conversation_id)
    assert first.resolved_at == start + timedelta(seconds=300)  # untouched
    assert (second.opened_at, second.first_inbound_at) == (reopened_at, reopened_at)
    assert (second.first_response_at, second.first_responder_user_id) == (
        reopened_at + timedelta(seconds=45),
        bilal,
    )
    assert (second.assigned_at, second.first_assignee_id, second.assignee_id) == (reopened_at, bilal, None)
    assert second.resolved_at is None

    # Reopened by a person rather than by the customer: a new opening, waiting for the customer.
    await patch(client, tenant, conversation_id, {"status": "RESOLVED"})
    clock.advance(timedelta(minutes=5))
    await patch(client, tenant, conversation_id, {"status": "ASSIGNED", "assigneeId": asha})
    *_, third = await openings(runtime, conversation_id)
    moment = reopened_at + timedelta(seconds=45, minutes=5)
    assert (third.opened_at, third.first_inbound_at, third.assigned_at, third.assignee_id) == (
        moment,
        None,
        moment,
        asha,
    )
    assert third.opened_by == "business"

    r = await client.get(f"{API}/analytics", headers=tenant.headers)
    body = r.json()
    # Opened three times; each was assigned (the second on reopening, back to Bilal); two resolved,
    # after 300 s and 45 s. First responses after 90 s and 45 s.
    assert body["conversations"] == {
        "opened": 3,
        "openedByCustomer": 2,
        "openedByBusiness": 1,
        "assigned": 3,
        "resolved": 2,
    }
    # Each assignment is credited to whom it went to: Asha the first and third, Bilal the second (its
    # reopening back to him), though Bilal held the first at resolution and nobody held the second.
    agents = {agent["userId"]: agent for agent in body["agents"]}
    assert {user: agents[user]["conversationsAssigned"] for user in (asha, bilal, chitra)} == {
        asha: 2,
        bilal: 1,
        chitra: 0,
    }
    assert {user: agents[user]["conversationsResolved"] for user in (asha, bilal, chitra)} == {
        asha: 0,
        bilal: 1,
        chitra: 0,
    }
    assert body["firstResponseSeconds"] == {"median": 45.0, "p90": 90.0}
    assert body["resolutionSeconds"] == {"median": 45.0, "p90": 300.0}


async def test_our_first_message_opens_without_an_inbound_and_broadcasts_never_respond(
    client, runtime, tenant, frozen_clock
):
    # A template to a new number opens the thread; the clock starts when the customer writes.
    r = await client.post(
        f"{API}/send",
        headers=tenant.headers,
        json={"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"},
    )
    assert r.status_code == 201, r.text
    conversation_id = r.json()["conversationId"]
    (row,) = await openings(runtime, conversation_id)
    assert (row.opened_at, row.first_inbound_at, row.first_response_at) == (frozen_clock, None, None)

    clock.advance(timedelta(minutes=1))
    await inbound(client, tenant)
    clock.advance(timedelta(minutes=1))
    async with runtime.database.transaction() as session:
        contact = await session.scalar(select(Contact).where(Contact.organization_id == tenant.organization_id))
        assert contact is not None
        await queue_broadcast_messages(
            session,
            organization_id=tenant.organization_id,
            broadcast_id="bc_test",
            items=[(contact, {"templateName": "hello_world", "language": "en_US", "components": []})],
        )
    (row,) = await openings(runtime, conversation_id)
    assert (row.first_inbound_at, row.first_response_at) == (frozen_clock + timedelta(minutes=1), None)

    clock.advance(timedelta(minutes=1))
    await send(client, tenant)
    (row,) = await openings(runtime, conversation_id)
    assert row.first_response_at == frozen_clock + timedelta(minutes=3)


async def test_a_broadcast_opening_new_threads_opens_them_in_one_go(client, runtime, tenant, frozen_clock):
    async with runtime.database.transaction() as session:
        contacts = [
            Contact(id=f"ctc_bulk{n}", organization_id=tenant.organization_id, phone=f"+91970000000{n}", attributes={})
            for n in range(3)
        ]
        session.add_all(contacts)
        await session.flush()
        messages = await queue_broadcast_messages(
            session,
            organization_id=tenant.organization_id,
            broadcast_id="bc_test",
            items=[(contact, {"templateName": "hello_world", "language": "en_US"}) for contact in contacts],
        )

    for message in messages:
        (row,) = await openings(runtime, message.conversation_id)
        assert (row.opened_at, row.first_inbound_at, row.assignee_id) == (frozen_clock, None, None)


async def test_a_conversation_never_has_two_open_openings(client, runtime, tenant, frozen_clock):
    # An opening attempted for a conversation already open (a concurrent reopening) adds nothing and
    # raises nothing, so later updates and figures see one row.
    conversation_id = (await inbound(client, tenant))["conversationId"]
    async with runtime.database.transaction() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        await add_openings(session, [new_opening(conversation, at=frozen_clock, inbound=True)])
        await add_openings(session, [new_opening(conversation, at=frozen_clock, inbound=False)])

    (row,) = await openings(runtime, conversation_id)
    assert row.resolved_at is None
    r = await client.get(f"{API}/analytics", headers=tenant.headers)
    assert r.json()["conversations"]["opened"] == 1


async def test_two_workers_reopening_one_conversation_at_once_leave_one_open_opening(
    client, runtime, tenant, frozen_clock
):
    # Two inbound messages for a resolved conversation, processed by two workers at the same moment:
    # both see it resolved and reopen it. (On SQLite the second writer waits for the first, then writes
    # from what it read before: the same race.)
    conversation_id = (await inbound(client, tenant))["conversationId"]
    await patch(client, tenant, conversation_id, {"status": "RESOLVED"})
    clock.advance(timedelta(minutes=5))
    both_read = asyncio.Barrier(2)

    async def reopen() -> None:
        async with runtime.database.transaction() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            assert conversation.status == "RESOLVED"
            contact = await session.get(Contact, conversation.contact_id)
            assert contact is not None
            await both_read.wait()
            await thread_for_message(
                session, organization_id=tenant.organization_id, contact=contact, inbound=True, at=clock.now()
            )

    await asyncio.wait_for(asyncio.gather(reopen(), reopen()), timeout=30)

    first, second = await openings(runtime, conversation_id)
    assert first.resolved_at is not None
    assert second.resolved_at is None

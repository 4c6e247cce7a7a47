"""Threads for a batch of our own messages (broadcasts): the same choice as for one, and races with inbound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kaanha.conversations import service
from kaanha.conversations.service import threads_for_outbound
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Contact, Conversation, Event
from kaanha.runtime import Runtime
from tests.conftest import Tenant


async def add_contact(runtime: Runtime, tenant: Tenant, n: int) -> str:
    async with runtime.database.transaction() as session:
        contact = Contact(
            id=new_id("ctc"), organization_id=tenant.organization_id, phone=f"+9197{n:08d}", attributes={}
        )
        session.add(contact)
    return contact.id


async def test_a_thread_opened_by_an_inbound_message_meanwhile_is_joined_not_duplicated(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    raced = await add_contact(runtime, tenant, 1)
    fresh = await add_contact(runtime, tenant, 2)
    opened_meanwhile = Conversation(
        id=new_id("cnv"),
        organization_id=tenant.organization_id,
        contact_id=raced,
        status="OPEN",
        unread_count=1,
        last_message_at=now() - timedelta(minutes=1),
    )
    async with runtime.database.transaction() as session:
        session.add(opened_meanwhile)

    async def read_before_it_committed(*_: object) -> dict[str, Conversation]:
        return {}

    # As if the batch looked for threads just before the inbound message's transaction committed.
    monkeypatch.setattr(service, "_latest_for_contacts", read_before_it_committed)
    at = now()
    async with runtime.database.transaction() as session:
        contacts = list(await session.scalars(select(Contact).order_by(Contact.phone)))
        threads = await threads_for_outbound(session, organization_id=tenant.organization_id, contacts=contacts, at=at)
        chosen = {contact_id: (c.id, c.status, c.last_message_at) for contact_id, c in threads.items()}

    assert chosen[raced] == (opened_meanwhile.id, "OPEN", at)
    assert chosen[fresh][0] != opened_meanwhile.id
    async with runtime.database.sessions() as session:
        active = list(await session.scalars(select(Conversation).where(Conversation.status != "RESOLVED")))
        created = list(await session.scalars(select(Event).where(Event.type == "conversation.created")))
    assert sorted(c.contact_id for c in active) == sorted([raced, fresh])
    assert [e.data["contact"]["id"] for e in created] == [fresh]


async def test_nothing_to_queue_needs_no_thread(runtime: Runtime, tenant: Tenant) -> None:
    async with runtime.database.transaction() as session:
        assert await threads_for_outbound(session, organization_id=tenant.organization_id, contacts=[], at=now()) == {}

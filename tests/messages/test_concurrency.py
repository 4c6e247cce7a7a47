"""Concurrent first messages to or from a new phone: every request succeeds, one contact, one thread."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from kaanha.models import Contact, Conversation, Message
from tests.conftest import API

NEW_PHONE = "+919812345678"


async def _counts(runtime) -> tuple[int, int, int]:
    async with runtime.database.sessions() as session:
        return tuple(  # type: ignore[return-value]
            [
                int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Contact, Conversation, Message)
            ]
        )


async def test_parallel_template_sends_to_a_new_phone(client, tenant, runtime):
    body = {"to": NEW_PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}
    responses = await asyncio.gather(*[client.post(f"{API}/send", json=body, headers=tenant.headers) for _ in range(5)])
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert len({r.json()["conversationId"] for r in responses}) == 1
    assert await _counts(runtime) == (1, 1, 5)


async def test_parallel_first_messages_from_a_new_customer(client, tenant, runtime):
    responses = await asyncio.gather(
        *[
            client.post(f"{API}/sandbox/inbound", json={"from": NEW_PHONE, "text": f"hi {n}"}, headers=tenant.headers)
            for n in range(5)
        ]
    )
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert await _counts(runtime) == (1, 1, 5)


async def test_a_contact_created_meanwhile_is_used_not_a_crash(runtime, tenant, monkeypatch):
    """Two transactions both find no contact, then both insert: the second uses the first's row."""
    from kaanha.contacts.repository import ContactRepository
    from kaanha.contacts.service import ensure_contact

    barrier = asyncio.Barrier(2)
    original = ContactRepository.find_by_phone

    async def find_then_wait(self, phone):
        found = await original(self, phone)
        if barrier.n_waiting < 2 and found is None:
            await barrier.wait()  # both have looked and found nothing
        return found

    monkeypatch.setattr(ContactRepository, "find_by_phone", find_then_wait)

    async def create() -> str:
        async with runtime.database.transaction() as session:
            contact = await ensure_contact(session, organization_id=tenant.organization_id, phone=NEW_PHONE)
            return contact.id

    first, second = await asyncio.wait_for(asyncio.gather(create(), create()), timeout=30)
    assert first == second
    assert (await _counts(runtime))[0] == 1

"""Concurrent first messages to or from a new phone: every request succeeds, one contact, one thread."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import func, select

from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.service import ensure_contact
from kaanha.database import Database
from kaanha.migrations import upgrade_database_async
from kaanha.models import Contact, Conversation, Message
from kaanha.organizations.service import create_organization
from kaanha.testing.databases import scratch_postgres_database
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


POSTGRES = os.environ.get("KAANHA_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def test_a_contact_created_meanwhile_is_used_not_a_crash(monkeypatch):
    """Two transactions both find no contact, then both insert: the second uses the first's row.

    Run on PostgreSQL whatever the suite's database: only it lets both transactions get this far
    at once (SQLite admits one writer at a time). It fails, never skips, without PostgreSQL.
    """
    barrier = asyncio.Barrier(2)
    original = ContactRepository.find_by_phone

    async def find_then_wait(self, phone):
        found = await original(self, phone)
        if found is None and barrier.n_waiting < 2:
            await barrier.wait()  # both have looked and found nothing
        return found

    with scratch_postgres_database(POSTGRES, prefix="kaanha_race") as url:
        await upgrade_database_async(url)
        database = Database(url)
        try:
            async with database.transaction() as session:
                organization = await create_organization(session, name="Race")
            monkeypatch.setattr(ContactRepository, "find_by_phone", find_then_wait)

            async def create() -> str:
                async with database.transaction() as session:
                    contact = await ensure_contact(session, organization_id=organization.id, phone=NEW_PHONE)
                    return contact.id

            first, second = await asyncio.wait_for(asyncio.gather(create(), create()), timeout=30)
            assert first == second
            async with database.sessions() as session:
                assert await session.scalar(select(func.count()).select_from(Contact)) == 1
        finally:
            await database.dispose()

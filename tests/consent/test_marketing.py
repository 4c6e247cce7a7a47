"""Marketing templates go only to contacts who opted in; utility templates and other messages are not held back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from kaanha.consent.service import marketing_block_reason
from kaanha.models import Contact, Message
from kaanha.runtime import Runtime
from tests.conftest import API
from tests.consent.support import PHONE, add_marketing_template, create_contact, template, writes
from tests.helpers import assert_error

SALE = template("spring_sale")
HELLO = template("hello_world")  # one of the sandbox's samples, a UTILITY template


async def counts(runtime: Runtime) -> tuple[int, int]:
    """(contacts, messages) in the whole database."""
    async with runtime.database.sessions() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        messages = await session.scalar(select(func.count()).select_from(Message))
    return int(contacts or 0), int(messages or 0)


@pytest.fixture(autouse=True)
async def marketing_template(runtime, tenant) -> None:
    await add_marketing_template(runtime, tenant)


async def test_a_marketing_template_goes_to_an_opted_in_contact(client, tenant):
    await create_contact(client, tenant, optedIn=True)

    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **SALE})

    assert r.status_code == 201, r.text
    assert r.json()["content"]["category"] == "MARKETING"
    assert r.json()["status"] == "queued"


async def test_a_marketing_template_to_someone_not_yet_a_contact_is_refused(client, tenant, runtime):
    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **SALE})

    error = assert_error(r, 400, "contact_not_opted_in")["error"]
    assert "POST /contacts" in error
    assert '"optedIn": true' in error
    assert await counts(runtime) == (0, 0)  # no contact created, nothing queued


async def test_a_marketing_template_to_a_contact_who_never_opted_in_is_refused(client, tenant, runtime):
    contact = await create_contact(client, tenant)

    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **SALE})

    error = assert_error(r, 400, "contact_not_opted_in")["error"]
    assert f"PATCH /contacts/{contact['id']}" in error
    assert await counts(runtime) == (1, 0)


async def test_a_marketing_template_to_a_contact_who_opted_out_is_refused_saying_when(
    client, tenant, runtime, frozen_clock
):
    await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")
    before = await counts(runtime)

    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": "098765 43210", **SALE})

    error = assert_error(r, 400, "contact_opted_out")["error"]
    assert "2026-11-24T10:00:00Z" in error
    assert "opt-out keyword" in error
    assert "START" in error
    assert await counts(runtime) == before


async def test_opting_back_in_lets_marketing_through_again(client, tenant):
    contact = await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")
    r = await client.patch(f"{API}/contacts/{contact['id']}", headers=tenant.headers, json={"optedIn": True})
    assert r.status_code == 200, r.text

    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **SALE})

    assert r.status_code == 201, r.text


async def test_utility_templates_and_other_messages_are_not_held_back(client, tenant):
    # Not a contact yet: a utility template still goes.
    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": "+919812345678", **HELLO})
    assert r.status_code == 201, r.text

    await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")
    for body in (HELLO, {"type": "text", "text": "Your order has shipped."}):
        r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **body})
        assert r.status_code == 201, r.text


async def test_an_unknown_template_is_still_not_found_first(client, tenant):
    r = await client.post(f"{API}/send", headers=tenant.headers, json={"to": PHONE, **template("no_such")})

    assert_error(r, 404)


# --- marketing_block_reason, which broadcasts use to skip recipients ----------------------------------

CHANGED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("contact", "reason"),
    [
        (None, "not_opted_in"),
        (Contact(opted_in=False, opted_in_changed_at=None), "not_opted_in"),
        (Contact(opted_in=False, opted_in_changed_at=CHANGED, opted_in_source="keyword"), "opted_out"),
        (Contact(opted_in=False, opted_in_changed_at=CHANGED, opted_in_source="api"), "opted_out"),
        (Contact(opted_in=True, opted_in_changed_at=CHANGED, opted_in_source="api"), None),
    ],
    ids=["not a contact", "never opted in", "wrote STOP", "withdrawn through the API", "opted in"],
)
def test_marketing_block_reason(contact, reason):
    assert marketing_block_reason(contact) == reason

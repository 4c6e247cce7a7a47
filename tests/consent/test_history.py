"""Opt-in through the contacts API: the contact's optedIn fields, its history, and the events it emits."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from kaanha.events import types
from kaanha.kit.clock import clock
from tests.conftest import API, Tenant, make_tenant
from tests.consent.support import PHONE, create_contact, events, get, history, writes
from tests.helpers import assert_error


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def our_key_id(client: httpx.AsyncClient, tenant: Tenant) -> str:
    (key,) = (await get(client, tenant, "/api-keys"))["data"]
    return str(key["id"])


async def test_a_contact_created_opted_in_says_when_and_how(client, tenant, runtime, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)

    assert contact["optedIn"] is True
    assert contact["optedInChangedAt"] == iso(frozen_clock)
    assert contact["optedInSource"] == "api"
    assert await get(client, tenant, f"/contacts/{contact['id']}") == contact
    (change,) = await history(client, tenant, contact["id"])
    assert set(change) == {"id", "contactId", "optedIn", "source", "detail", "createdAt"}
    assert change["contactId"] == contact["id"]
    assert (change["optedIn"], change["source"]) == (True, "api")
    assert change["detail"] == await our_key_id(client, tenant)  # which API key recorded the consent
    assert change["createdAt"] == iso(frozen_clock)
    # Creating is one contact.created (showing the opt-in), never a contact.updated as well.
    (created,) = await events(runtime, tenant, types.CONTACT_CREATED)
    assert created.data == contact
    assert await events(runtime, tenant, types.CONTACT_UPDATED) == []


async def test_a_contact_created_without_opt_in_has_no_history(client, tenant):
    contact = await create_contact(client, tenant)

    assert contact["optedIn"] is False
    assert contact["optedInChangedAt"] is None
    assert contact["optedInSource"] is None
    assert await history(client, tenant, contact["id"]) == []


async def test_patching_opt_in_records_each_change_once(client, tenant, runtime, frozen_clock):
    contact = await create_contact(client, tenant)
    url = f"{API}/contacts/{contact['id']}"

    clock.advance(timedelta(hours=1))
    r = await client.patch(url, headers=tenant.headers, json={"optedIn": True, "name": "Asha Rao"})
    assert r.status_code == 200, r.text
    assert r.json()["optedInChangedAt"] == iso(frozen_clock + timedelta(hours=1))
    (updated,) = await events(runtime, tenant, types.CONTACT_UPDATED)  # one event for name and opt-in together
    assert updated.data == r.json()

    clock.advance(timedelta(hours=1))
    same = await client.patch(url, headers=tenant.headers, json={"optedIn": True})
    assert same.json()["optedInChangedAt"] == iso(frozen_clock + timedelta(hours=1))
    assert len(await events(runtime, tenant, types.CONTACT_UPDATED)) == 1

    r = await client.patch(url, headers=tenant.headers, json={"optedIn": False})
    assert r.json()["optedIn"] is False
    assert r.json()["optedInChangedAt"] == iso(frozen_clock + timedelta(hours=2))
    assert len(await events(runtime, tenant, types.CONTACT_UPDATED)) == 2

    changes = await history(client, tenant, contact["id"])
    assert [(c["optedIn"], c["createdAt"]) for c in changes] == [
        (False, iso(frozen_clock + timedelta(hours=2))),
        (True, iso(frozen_clock + timedelta(hours=1))),
    ]


async def test_opting_out_through_the_api_someone_who_never_opted_in_changes_nothing(client, tenant, runtime):
    contact = await create_contact(client, tenant)

    r = await client.patch(f"{API}/contacts/{contact['id']}", headers=tenant.headers, json={"optedIn": False})

    assert r.status_code == 200, r.text
    assert r.json()["optedInChangedAt"] is None
    assert await history(client, tenant, contact["id"]) == []
    assert await events(runtime, tenant, types.CONTACT_UPDATED) == []


async def test_history_pages_newest_first(client, tenant, frozen_clock):
    contact = await create_contact(client, tenant, optedIn=True)
    for text in ("STOP", "START", "STOP"):
        clock.advance(timedelta(minutes=1))
        await writes(client, tenant, text)

    page = await get(client, tenant, f"/contacts/{contact['id']}/opt-in-history", limit=2, page=2)

    assert page["pagination"] == {"page": 2, "limit": 2, "total": 4, "totalPages": 2}
    assert [(c["optedIn"], c["source"]) for c in page["data"]] == [(False, "keyword"), (True, "api")]
    bad = await client.get(f"{API}/contacts/{contact['id']}/opt-in-history?limit=101", headers=tenant.headers)
    assert_error(bad, 400)


async def test_another_organizations_contact_history_is_not_found(client, tenant, other_tenant):
    theirs = await create_contact(client, other_tenant, optedIn=True)

    r = await client.get(f"{API}/contacts/{theirs['id']}/opt-in-history", headers=tenant.headers)

    # Exactly as for an id that exists nowhere: nothing tells the two apart.
    missing = await client.get(f"{API}/contacts/ctc_nobody/opt-in-history", headers=tenant.headers)
    assert assert_error(r, 404, "contact_not_found")["error"] == assert_error(missing, 404)["error"].replace(
        "ctc_nobody", theirs["id"]
    )


async def test_history_needs_contacts_read(client, runtime, tenant):
    contact = await create_contact(client, tenant, optedIn=True)
    writer = await make_tenant(runtime, "Messenger", scopes=["messages:send"])

    r = await client.get(f"{API}/contacts/{contact['id']}/opt-in-history", headers=writer.headers)

    assert_error(r, 403, "insufficient_scope")


async def test_deleting_a_contact_deletes_its_history(client, tenant):
    contact = await create_contact(client, tenant, optedIn=True)
    await writes(client, tenant, "STOP")

    r = await client.delete(f"{API}/contacts/{contact['id']}", headers=tenant.headers)
    assert r.status_code == 204, r.text

    again = await create_contact(client, tenant, phone=PHONE)
    assert await history(client, tenant, again["id"]) == []
    assert_error(await client.get(f"{API}/contacts/{contact['id']}/opt-in-history", headers=tenant.headers), 404)

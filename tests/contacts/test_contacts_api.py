"""Contacts over the API as a client meets them: search, tags, paging, E.164 phones, edits, bad input
(400 JSON that writes nothing), Idempotency-Key retries, and another organization's contacts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from kaanha.kit.clock import clock
from tests.conftest import API, Tenant
from tests.helpers import assert_error

CONTACTS = f"{API}/contacts"
ASHA = "+919876543210"
RAVI = "+919812345678"
MEERA = "+14155550123"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def json_headers(tenant: Tenant) -> dict[str, str]:
    return {**tenant.headers, "Content-Type": "application/json"}


async def create(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    r = await client.post(CONTACTS, headers=tenant.headers, json=fields)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def listing(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    r = await client.get(CONTACTS, headers=tenant.headers, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"data", "pagination"}, body
    assert set(body["pagination"]) == {"page", "limit", "total", "totalPages"}, body
    return body


async def total(client: httpx.AsyncClient, tenant: Tenant) -> int:
    return int((await listing(client, tenant))["pagination"]["total"])


async def search(client: httpx.AsyncClient, tenant: Tenant, text: str) -> set[str]:
    body = await listing(client, tenant, search=text, limit=100)
    assert body["pagination"]["total"] == len(body["data"])
    return {contact["name"] for contact in body["data"]}


@pytest.fixture
async def people(client, tenant) -> dict[str, dict[str, Any]]:
    return {
        "Asha Rao": await create(client, tenant, phone=ASHA, name="Asha Rao", tags=["vip", "retail"]),
        "Ravi Kumar": await create(client, tenant, phone=RAVI, name="Ravi Kumar", tags=["retail"]),
        "Meera Shah": await create(client, tenant, phone=MEERA, name="Meera Shah"),
    }


# --- Create and read ----------------------------------------------------------------------------------


async def test_create_answers_201_with_the_contact_in_camel_case(client, tenant):
    r = await client.post(
        CONTACTS,
        headers=tenant.headers,
        json={
            "phone": ASHA,
            "name": "John Doe",
            "email": "john@example.com",
            "tags": ["vip", "retail"],
            "optedIn": True,
            "attributes": {"city": "Pune", "orders": 3, "score": 4.5, "member": True, "note": None},
        },
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    assert set(contact) >= {
        "id",
        "phone",
        "name",
        "email",
        "tags",
        "optedIn",
        "attributes",
        "createdAt",
        "updatedAt",
        "lastMessageAt",
    }
    assert not any("_" in field for field in contact), contact
    assert isinstance(contact["id"], str)
    assert contact["id"]
    assert contact["phone"] == ASHA
    assert contact["name"] == "John Doe"
    assert contact["email"] == "john@example.com"
    assert sorted(contact["tags"]) == ["retail", "vip"]
    assert contact["optedIn"] is True
    assert contact["attributes"] == {"city": "Pune", "orders": 3, "score": 4.5, "member": True, "note": None}
    assert ISO_UTC.match(contact["createdAt"]), contact
    assert ISO_UTC.match(contact["updatedAt"]), contact
    assert contact["lastMessageAt"] is None

    r = await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json() == contact


async def test_create_with_only_a_phone_fills_defaults(client, tenant):
    contact = await create(client, tenant, phone=ASHA)
    assert contact["phone"] == ASHA
    assert contact["name"] is None
    assert contact["email"] is None
    assert contact["tags"] == []
    assert contact["optedIn"] is False
    assert contact["attributes"] == {}


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("098765 43210", "+919876543210"),  # national format, read in the organization's region (IN)
        ("9876543210", "+919876543210"),
        ("+91 98765 43210", "+919876543210"),
        ("+91-98765-43210", "+919876543210"),
        ("0091 98765 43210", "+919876543210"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("  +919876543210  ", "+919876543210"),
    ],
)
async def test_phones_are_stored_as_e164(client, tenant, raw, e164):
    contact = await create(client, tenant, phone=raw)
    assert contact["phone"] == e164
    r = await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)
    assert r.json()["phone"] == e164


@pytest.mark.parametrize("raw", ["12345", "+91 12", "+999 1234567", "phone me", "+91 98765 43210 ext", "+"])
async def test_an_invalid_phone_is_400_invalid_phone_number_and_writes_nothing(client, tenant, raw):
    r = await client.post(CONTACTS, headers=tenant.headers, json={"phone": raw, "name": "Nobody"})
    assert_error(r, 400, "invalid_phone_number")
    assert await total(client, tenant) == 0


@pytest.mark.parametrize("again", [ASHA, "098765 43210", "+91 98765-43210", "9876543210"])
async def test_a_duplicate_phone_is_409_even_when_written_differently(client, tenant, again):
    first = await create(client, tenant, phone=ASHA, name="Asha")
    r = await client.post(CONTACTS, headers=tenant.headers, json={"phone": again, "name": "Asha again"})
    body = assert_error(r, 409, "duplicate_contact")
    assert ASHA in body["error"]
    assert await total(client, tenant) == 1
    r = await client.get(f"{CONTACTS}/{first['id']}", headers=tenant.headers)
    assert r.json()["name"] == "Asha"


async def test_an_unknown_contact_is_404(client, tenant):
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method, f"{CONTACTS}/ctc_nope", headers=tenant.headers, json={"name": "x"} if method == "PATCH" else None
        )
        assert_error(r, 404, "contact_not_found")


# --- Bad input: 400 JSON (never 422), nothing written ---------------------------------------------------

BAD_CREATES: list[tuple[str, Any]] = [
    ("missing phone", {"name": "No phone"}),
    ("empty phone", {"phone": ""}),
    ("null phone", {"phone": None}),
    ("phone as a number", {"phone": 919876543210}),
    ("name as a number", {"phone": ASHA, "name": 123}),
    ("name too long", {"phone": ASHA, "name": "x" * 201}),
    ("tags as a string", {"phone": ASHA, "tags": "vip"}),
    ("tags of numbers", {"phone": ASHA, "tags": [1, 2]}),
    ("empty tag", {"phone": ASHA, "tags": [""]}),
    ("tag too long", {"phone": ASHA, "tags": ["t" * 65]}),
    ("too many tags", {"phone": ASHA, "tags": [f"tag{i}" for i in range(21)]}),
    ("optedIn not a boolean", {"phone": ASHA, "optedIn": "maybe"}),
    ("optedIn as a list", {"phone": ASHA, "optedIn": [True]}),
    ("attributes as a list", {"phone": ASHA, "attributes": ["a"]}),
    ("nested attribute", {"phone": ASHA, "attributes": {"address": {"city": "Pune"}}}),
    ("too many attributes", {"phone": ASHA, "attributes": {f"a{i}": i for i in range(51)}}),
    ("attribute value too long", {"phone": ASHA, "attributes": {"note": "x" * 1001}}),
    ("attribute value a huge integer", {"phone": ASHA, "attributes": {"big": 10**20}}),
    ("attribute value a huge negative integer", {"phone": ASHA, "attributes": {"big": -(2**63) - 1}}),
    ("empty attribute name", {"phone": ASHA, "attributes": {"": 1}}),
    ("attribute name too long", {"phone": ASHA, "attributes": {"k" * 65: 1}}),
    ("NUL in name", {"phone": ASHA, "name": "As\x00ha"}),
    ("NUL in tag", {"phone": ASHA, "tags": ["v\x00ip"]}),
    ("NUL in email", {"phone": ASHA, "email": "a\x00sha@example.com"}),
    ("NUL in attribute name", {"phone": ASHA, "attributes": {"ci\x00ty": "Pune"}}),
    ("NUL in attribute value", {"phone": ASHA, "attributes": {"city": "Pu\x00ne"}}),
    ("NUL in phone", {"phone": "+9198765\x0043210"}),
    ("invalid email", {"phone": ASHA, "email": "not-an-email"}),
    ("email without domain dot", {"phone": ASHA, "email": "asha@example"}),
    ("email as a number", {"phone": ASHA, "email": 42}),
    ("unknown field", {"phone": ASHA, "nickname": "A"}),
    ("typo of a field", {"phone": ASHA, "opted_In": True}),
    ("body is a list", [{"phone": ASHA}]),
    ("body is a string", "+919876543210"),
    ("body is a number", 42),
    ("body is null", None),
]


@pytest.mark.parametrize(("case", "body"), BAD_CREATES, ids=[case for case, _ in BAD_CREATES])
async def test_bad_create_input_is_400_json_and_writes_nothing(client, tenant, case, body):
    await create(client, tenant, phone=RAVI, name="Existing")
    r = await client.post(CONTACTS, headers=json_headers(tenant), content=json.dumps(body).encode())
    assert_error(r, 400)
    assert await total(client, tenant) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"phone": "+919876543210", "attributes": {"x": NaN}}',
        b'{"phone": "+919876543210", "attributes": {"x": Infinity}}',
        b'{"phone": "+919876543210", "attributes": {"x": -Infinity}}',
    ],
)
async def test_non_finite_attribute_numbers_are_400_and_write_nothing(client, tenant, raw):
    # Python's JSON reader takes NaN and Infinity; JSON (and PostgreSQL's JSONB) has no such numbers.
    r = await client.post(CONTACTS, headers=json_headers(tenant), content=raw)
    assert "attributes" in assert_error(r, 400)["error"]
    assert await total(client, tenant) == 0


async def test_attribute_numbers_within_64_bits_come_back_exactly(client, tenant):
    attributes = {"max": 2**63 - 1, "min": -(2**63), "zero": 0, "pi": 3.14159, "tiny": 1e-300}
    contact = await create(client, tenant, phone=ASHA, attributes=attributes)
    assert contact["attributes"] == attributes
    r = await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)
    assert r.json()["attributes"] == attributes


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"phone": "+919876543210",}', b"phone=+919876543210", b"\xff\xfe", b"{'phone': '+919876543210'}"],
)
async def test_a_body_that_is_not_json_is_400_and_writes_nothing(client, tenant, raw):
    r = await client.post(CONTACTS, headers=json_headers(tenant), content=raw)
    assert_error(r, 400, "invalid_json")
    assert await total(client, tenant) == 0


async def test_an_empty_body_is_400(client, tenant):
    r = await client.post(CONTACTS, headers=json_headers(tenant), content=b"")
    assert_error(r, 400)
    assert await total(client, tenant) == 0


async def test_the_error_names_the_bad_field(client, tenant):
    r = await client.post(CONTACTS, headers=tenant.headers, json={"phone": ASHA, "email": "nope"})
    assert "email" in assert_error(r, 400)["error"]
    r = await client.post(CONTACTS, headers=tenant.headers, json={"name": "x"})
    assert "phone" in assert_error(r, 400)["error"]
    r = await client.post(CONTACTS, headers=tenant.headers, json={"phone": ASHA, "colour": "red"})
    assert "colour" in assert_error(r, 400)["error"]


async def test_an_empty_email_means_none_and_duplicate_tags_count_once(client, tenant):
    contact = await create(client, tenant, phone=ASHA, email="", tags=["vip", "vip", " retail "])
    assert contact["email"] is None
    assert sorted(contact["tags"]) == ["retail", "vip"]


# --- Update and delete ------------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(client, tenant):
    attributes = {"city": "Pune", "tier": "gold"}
    contact = await create(
        client, tenant, phone=ASHA, name="Asha", email="asha@example.com", tags=["vip", "retail"], attributes=attributes
    )
    url = f"{CONTACTS}/{contact['id']}"

    r = await client.patch(url, headers=tenant.headers, json={"name": "Asha Rao"})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["name"] == "Asha Rao"
    for field in ("id", "phone", "email", "tags", "optedIn", "attributes", "createdAt"):
        assert patched[field] == contact[field], field

    r = await client.patch(url, headers=tenant.headers, json={"email": "rao@example.com", "optedIn": True})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "rao@example.com"
    assert r.json()["optedIn"] is True
    assert r.json()["name"] == "Asha Rao"

    r = await client.patch(url, headers=tenant.headers, json={"tags": ["new"]})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["new"]  # replaced, not merged

    r = await client.patch(url, headers=tenant.headers, json={"attributes": {"lang": "hi"}})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"lang": "hi"}  # the whole map is replaced

    r = await client.patch(url, headers=tenant.headers, json={"optedIn": False, "tags": [], "attributes": {}})
    assert r.status_code == 200, r.text
    assert r.json()["optedIn"] is False
    assert r.json()["tags"] == []
    assert r.json()["attributes"] == {}

    r = await client.patch(url, headers=tenant.headers, json={"name": None, "email": None})
    assert r.status_code == 200, r.text
    assert r.json()["name"] is None
    assert r.json()["email"] is None

    # What PATCH answered is what GET and the list show afterwards.
    final = r.json()
    r = await client.get(url, headers=tenant.headers)
    assert r.json() == final
    assert (await listing(client, tenant))["data"] == [final]
    assert (await listing(client, tenant, tag="vip"))["pagination"]["total"] == 0


async def test_patch_moves_updated_at_but_not_created_at(client, tenant, frozen_clock):
    contact = await create(client, tenant, phone=ASHA, name="Asha")
    assert contact["createdAt"] == contact["updatedAt"] == "2026-11-24T10:00:00Z"
    clock.advance(timedelta(minutes=5))
    r = await client.patch(f"{CONTACTS}/{contact['id']}", headers=tenant.headers, json={"name": "Asha R"})
    assert r.status_code == 200, r.text
    assert r.json()["createdAt"] == "2026-11-24T10:00:00Z"
    assert r.json()["updatedAt"] == "2026-11-24T10:05:00Z"


async def test_patch_normalizes_the_phone_and_refuses_anothers(client, tenant, people):
    asha = people["Asha Rao"]
    r = await client.patch(f"{CONTACTS}/{asha['id']}", headers=tenant.headers, json={"phone": "098123 45678"})
    assert_error(r, 409, "duplicate_contact")
    r = await client.patch(f"{CONTACTS}/{asha['id']}", headers=tenant.headers, json={"phone": "098765 00000"})
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "+919876500000"
    r = await client.patch(f"{CONTACTS}/{asha['id']}", headers=tenant.headers, json={"phone": "12"})
    assert_error(r, 400, "invalid_phone_number")
    r = await client.get(f"{CONTACTS}/{asha['id']}", headers=tenant.headers)
    assert r.json()["phone"] == "+919876500000"


BAD_PATCHES: list[tuple[str, Any]] = [
    ("unknown field", {"name": "X", "nickname": "A"}),
    ("name as a number", {"name": 5}),
    ("invalid email", {"email": "nope", "name": "X"}),
    ("tags as a string", {"tags": "vip"}),
    ("too many tags", {"tags": [f"t{i}" for i in range(21)]}),
    ("attributes as a list", {"attributes": [1]}),
    ("nested attribute", {"attributes": {"a": [1, 2]}}),
    ("optedIn not a boolean", {"optedIn": "sometimes"}),
    ("empty phone", {"phone": ""}),
    ("NUL in name", {"name": "A\x00"}),
    ("NUL in attributes", {"attributes": {"k": ["\x00"]}}),
    ("huge attribute number", {"attributes": {"k": 2**64}}),
    ("body is a list", [{"name": "X"}]),
    ("body is a string", "X"),
]


@pytest.mark.parametrize(("case", "body"), BAD_PATCHES, ids=[case for case, _ in BAD_PATCHES])
async def test_bad_patch_input_is_400_and_changes_nothing(client, tenant, case, body):
    contact = await create(client, tenant, phone=ASHA, name="Asha", tags=["vip"], attributes={"city": "Pune"})
    url = f"{CONTACTS}/{contact['id']}"
    r = await client.patch(url, headers=json_headers(tenant), content=json.dumps(body).encode())
    assert_error(r, 400)
    r = await client.get(url, headers=tenant.headers)
    assert r.json() == contact


async def test_a_patch_body_that_is_not_json_is_400(client, tenant):
    contact = await create(client, tenant, phone=ASHA, name="Asha")
    r = await client.patch(
        f"{CONTACTS}/{contact['id']}",
        headers=json_headers(tenant),
        content=b'{"name": ',
    )
    assert_error(r, 400, "invalid_json")
    assert (await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)).json() == contact


async def test_delete_answers_204_then_the_contact_is_gone(client, tenant, people):
    asha = people["Asha Rao"]
    url = f"{CONTACTS}/{asha['id']}"
    r = await client.delete(url, headers=tenant.headers)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(await client.get(url, headers=tenant.headers), 404, "contact_not_found")
    assert_error(await client.patch(url, headers=tenant.headers, json={"name": "Back"}), 404, "contact_not_found")
    assert_error(await client.delete(url, headers=tenant.headers), 404, "contact_not_found")
    body = await listing(client, tenant)
    assert body["pagination"]["total"] == 2
    assert asha["id"] not in {c["id"] for c in body["data"]}
    assert await search(client, tenant, "asha") == set()
    assert (await listing(client, tenant, tag="vip"))["pagination"]["total"] == 0
    # The phone is free again.
    again = await create(client, tenant, phone=ASHA, name="Asha again")
    assert again["id"] != asha["id"]
    assert again["tags"] == []


# --- Search, tags and paging ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Asha", {"Asha Rao"}),
        ("asha", {"Asha Rao"}),
        ("ASHA RAO", {"Asha Rao"}),
        ("sha", {"Asha Rao", "Meera Shah"}),
        ("kumar", {"Ravi Kumar"}),
        ("a r", {"Asha Rao"}),
        ("zz", set()),
        ("nobody", set()),
        ("sh", {"Asha Rao", "Meera Shah"}),
        ("RA", {"Asha Rao", "Ravi Kumar", "Meera Shah"}),
        ("v", {"Ravi Kumar"}),
        ("M", {"Ravi Kumar", "Meera Shah"}),
    ],
)
async def test_search_finds_names_by_substring_ignoring_case(client, tenant, people, text, names):
    assert await search(client, tenant, text) == names


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("98765", {"Asha Rao"}),
        ("9876543210", {"Asha Rao"}),
        ("+919876543210", {"Asha Rao"}),
        ("+91 98765", {"Asha Rao"}),
        ("+91 98765 43210", {"Asha Rao"}),
        ("98765-43210", {"Asha Rao"}),
        ("(415) 555", {"Meera Shah"}),
        ("+91", {"Asha Rao", "Ravi Kumar"}),
        ("4155550123", {"Meera Shah"}),
        ("12345", {"Ravi Kumar"}),
        ("98", {"Asha Rao", "Ravi Kumar"}),
        ("+1 415", {"Meera Shah"}),
        ("0", {"Asha Rao", "Meera Shah"}),
        ("55555", set()),
        ("+44", set()),
    ],
)
async def test_search_finds_phones_by_digits_or_formatted(client, tenant, people, text, names):
    assert await search(client, tenant, text) == names


@pytest.mark.parametrize("text", ["%", "_", "%%%", "\\", '"', "a%", "'; drop table contacts; --", "*", "NEAR"])
async def test_search_treats_special_characters_literally(client, tenant, people, text):
    assert await search(client, tenant, text) == set()
    assert await total(client, tenant) == 3


async def test_search_finds_literal_special_characters(client, tenant):
    await create(client, tenant, phone=ASHA, name="100% Cotton")
    await create(client, tenant, phone=RAVI, name="snake_case Ltd")
    await create(client, tenant, phone=MEERA, name="Plain")
    assert await search(client, tenant, "%") == {"100% Cotton"}
    assert await search(client, tenant, "0% c") == {"100% Cotton"}
    assert await search(client, tenant, "_") == {"snake_case Ltd"}
    assert await search(client, tenant, "e_c") == {"snake_case Ltd"}


@pytest.mark.parametrize("params", [{"search": "as\x00ha"}, {"search": "\x00"}, {"tag": "v\x00ip"}])
async def test_a_nul_character_in_search_or_tag_is_400(client, tenant, people, params):
    r = await client.get(CONTACTS, headers=tenant.headers, params=params)
    assert_error(r, 400)


async def test_a_contact_id_with_a_nul_character_is_404(client, tenant, people):
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method, f"{CONTACTS}/ctc%00x", headers=tenant.headers, json={"name": "x"} if method == "PATCH" else None
        )
        assert_error(r, 404, "contact_not_found")
    assert await total(client, tenant) == 3


async def test_a_blank_search_lists_everyone_and_a_long_one_is_400(client, tenant, people):
    assert (await listing(client, tenant, search="   "))["pagination"]["total"] == 3
    assert (await listing(client, tenant, search=""))["pagination"]["total"] == 3
    assert (await listing(client, tenant, search="  asha  "))["pagination"]["total"] == 1
    r = await client.get(CONTACTS, headers=tenant.headers, params={"search": "a" * 101})
    assert_error(r, 400)


async def test_search_follows_edits_and_combines_with_tags(client, tenant, people):
    asha = people["Asha Rao"]
    r = await client.patch(f"{CONTACTS}/{asha['id']}", headers=tenant.headers, json={"name": "Lakshmi"})
    assert r.status_code == 200, r.text
    assert await search(client, tenant, "asha") == set()
    assert await search(client, tenant, "lakshmi") == {"Lakshmi"}
    assert await search(client, tenant, "ksh") == {"Lakshmi"}
    body = await listing(client, tenant, search="+91", tag="vip")
    assert [c["name"] for c in body["data"]] == ["Lakshmi"]
    body = await listing(client, tenant, search="kumar", tag="vip")
    assert body["data"] == []
    assert body["pagination"]["total"] == 0


async def test_tag_filter(client, tenant, people):
    body = await listing(client, tenant, tag="retail")
    assert {c["name"] for c in body["data"]} == {"Asha Rao", "Ravi Kumar"}
    assert body["pagination"]["total"] == 2
    for contact in body["data"]:
        assert "retail" in contact["tags"]
    body = await listing(client, tenant, tag="vip")
    assert [c["name"] for c in body["data"]] == ["Asha Rao"]
    assert sorted(body["data"][0]["tags"]) == ["retail", "vip"]  # every tag, not only the one filtered on
    body = await listing(client, tenant, tag="wholesale")
    assert body == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0}}
    assert (await listing(client, tenant, tag="VIP"))["pagination"]["total"] == 0  # tags are exact


async def test_paging_defaults_to_20_and_pages_cover_everyone_once(client, tenant):
    ids = set()
    for i in range(25):
        ids.add((await create(client, tenant, phone=f"+9198765432{i:02d}", name=f"Person {i}"))["id"])

    first = await listing(client, tenant)
    assert first["pagination"] == {"page": 1, "limit": 20, "total": 25, "totalPages": 2}
    assert len(first["data"]) == 20
    second = await listing(client, tenant, page=2)
    assert second["pagination"] == {"page": 2, "limit": 20, "total": 25, "totalPages": 2}
    assert len(second["data"]) == 5
    seen = [c["id"] for c in first["data"] + second["data"]]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == ids
    # Newest first.
    assert first["data"][0]["name"] == "Person 24"
    assert second["data"][-1]["name"] == "Person 0"

    beyond = await listing(client, tenant, page=3)
    assert beyond["data"] == []
    assert beyond["pagination"] == {"page": 3, "limit": 20, "total": 25, "totalPages": 2}

    small = await listing(client, tenant, limit=10, page=3)
    assert small["pagination"] == {"page": 3, "limit": 10, "total": 25, "totalPages": 3}
    assert len(small["data"]) == 5
    everyone = await listing(client, tenant, limit=100)
    assert everyone["pagination"] == {"page": 1, "limit": 100, "total": 25, "totalPages": 1}
    assert {c["id"] for c in everyone["data"]} == ids
    one = await listing(client, tenant, limit=1)
    assert one["pagination"]["totalPages"] == 25
    assert len(one["data"]) == 1

    searched = await listing(client, tenant, search="person 1", limit=5)
    # "Person 1" and "Person 10".."Person 19"
    assert searched["pagination"] == {"page": 1, "limit": 5, "total": 11, "totalPages": 3}


async def test_an_empty_list_has_zero_pages(client, tenant):
    assert await listing(client, tenant) == {
        "data": [],
        "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0},
    }


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": ""},
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1e3"},
        {"page": ""},
    ],
)
async def test_out_of_range_paging_is_400_json(client, tenant, params):
    r = await client.get(CONTACTS, headers=tenant.headers, params=params)
    body = assert_error(r, 400)
    assert next(iter(params)) in body["error"]


# --- Idempotency-Key ----------------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_replays_the_first_answer(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "create-asha-1"}
    body = {"phone": "098765 43210", "name": "Asha", "tags": ["vip"]}
    first = await client.post(CONTACTS, headers=headers, json=body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    again = await client.post(CONTACTS, headers=headers, json=body)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()

    # The same JSON written differently is the same request.
    reordered = await client.post(
        CONTACTS,
        headers={**headers, "Content-Type": "application/json"},
        content=b'{ "tags": ["vip"],   "name": "Asha", "phone": "098765 43210" }',
    )
    assert reordered.status_code == 201, reordered.text
    assert reordered.headers["idempotent-replayed"] == "true"
    assert reordered.json() == first.json()

    listed = await listing(client, tenant)
    assert listed["pagination"]["total"] == 1
    assert listed["data"][0]["id"] == first.json()["id"]


async def test_a_key_reused_with_another_body_is_409(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "k-1"}
    first = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha"})
    assert first.status_code == 201, first.text
    r = await client.post(CONTACTS, headers=headers, json={"phone": RAVI, "name": "Ravi"})
    assert_error(r, 409, "idempotency_key_reused")
    r = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha R"})
    assert_error(r, 409, "idempotency_key_reused")
    assert await total(client, tenant) == 1
    # The first request still replays.
    r = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha"})
    assert r.status_code == 201
    assert r.headers["idempotent-replayed"] == "true"
    assert r.json() == first.json()


async def test_different_keys_are_different_requests(client, tenant):
    r = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": "a"}, json={"phone": ASHA})
    assert r.status_code == 201, r.text
    r = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": "b"}, json={"phone": ASHA})
    assert_error(r, 409, "duplicate_contact")
    r = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": "c"}, json={"phone": RAVI})
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    assert await total(client, tenant) == 2


async def test_a_failed_request_is_not_remembered(client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "retry-after-fixing"}
    r = await client.post(CONTACTS, headers=headers, json={"phone": "12"})
    assert_error(r, 400, "invalid_phone_number")
    r = await client.post(CONTACTS, headers=headers, json={"phone": "12"})
    assert_error(r, 400, "invalid_phone_number")
    r = await client.post(CONTACTS, headers=headers, json={"phone": "+91", "name": 1})
    assert_error(r, 400)
    assert await total(client, tenant) == 0
    # A failure stored nothing, so the key is still free for the corrected request.
    r = await client.post(CONTACTS, headers=headers, json={"phone": ASHA})
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers


async def test_a_key_expires_after_24_hours(client, tenant, frozen_clock):
    headers = {**tenant.headers, "Idempotency-Key": "daily"}
    first = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha"})
    assert first.status_code == 201, first.text

    clock.advance(timedelta(hours=23, minutes=59))
    r = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha"})
    assert r.status_code == 201
    assert r.headers["idempotent-replayed"] == "true"
    assert r.json() == first.json()
    r = await client.post(CONTACTS, headers=headers, json={"phone": RAVI, "name": "Ravi"})
    assert_error(r, 409, "idempotency_key_reused")

    clock.advance(timedelta(minutes=1))
    # 24 hours on, the key is forgotten: the same request runs again (and meets the contact it made).
    r = await client.post(CONTACTS, headers=headers, json={"phone": ASHA, "name": "Asha"})
    assert_error(r, 409, "duplicate_contact")
    # ... and the key can carry a new request, which is then remembered in turn.
    r = await client.post(CONTACTS, headers=headers, json={"phone": RAVI, "name": "Ravi"})
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    ravi = r.json()
    assert ravi["createdAt"] == "2026-11-25T10:00:00Z"
    r = await client.post(CONTACTS, headers=headers, json={"phone": RAVI, "name": "Ravi"})
    assert r.headers["idempotent-replayed"] == "true"
    assert r.json() == ravi
    assert await total(client, tenant) == 2


async def test_an_expired_key_runs_the_request_again(client, tenant, frozen_clock):
    headers = {**tenant.headers, "Idempotency-Key": "again"}
    first = await client.post(CONTACTS, headers=headers, json={"phone": ASHA})
    assert first.status_code == 201, first.text
    r = await client.delete(f"{CONTACTS}/{first.json()['id']}", headers=tenant.headers)
    assert r.status_code == 204
    clock.advance(timedelta(hours=25))
    second = await client.post(CONTACTS, headers=headers, json={"phone": ASHA})
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await total(client, tenant) == 1


@pytest.mark.parametrize("key", [" ", "x" * 256, "tab\there"])
async def test_a_bad_idempotency_key_is_400(client, tenant, key):
    r = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": key}, json={"phone": ASHA})
    assert_error(r, 400)
    assert await total(client, tenant) == 0


async def test_idempotency_keys_belong_to_one_organization(client, tenant, other_tenant):
    mine = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": "shared"}, json={"phone": ASHA})
    assert mine.status_code == 201, mine.text
    theirs = await client.post(
        CONTACTS, headers={**other_tenant.headers, "Idempotency-Key": "shared"}, json={"phone": ASHA}
    )
    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    theirs_other = await client.post(
        CONTACTS, headers={**other_tenant.headers, "Idempotency-Key": "k2"}, json={"phone": RAVI}
    )
    assert theirs_other.status_code == 201
    r = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": "k2"}, json={"phone": MEERA})
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers
    assert r.json()["phone"] == MEERA


# --- Scopes and tenancy ---------------------------------------------------------------------------------------


async def test_contacts_need_their_scopes(client, runtime, tenant):
    from tests.conftest import make_tenant

    reader = await make_tenant(runtime, "Readers", scopes=["contacts:read"])
    assert (await client.get(CONTACTS, headers=reader.headers)).status_code == 200
    r = await client.post(CONTACTS, headers=reader.headers, json={"phone": ASHA})
    body = assert_error(r, 403, "insufficient_scope")
    assert "contacts:write" in body["error"]
    writer = await make_tenant(runtime, "Writers", scopes=["contacts:write"])
    assert_error(await client.get(CONTACTS, headers=writer.headers), 403, "insufficient_scope")
    created = await create(client, writer, phone=ASHA)
    assert_error(await client.get(f"{CONTACTS}/{created['id']}", headers=writer.headers), 403, "insufficient_scope")
    other = await make_tenant(runtime, "Others", scopes=["messages:send"])
    for method, url in [
        ("GET", CONTACTS),
        ("POST", CONTACTS),
        ("GET", f"{CONTACTS}/{created['id']}"),
        ("PATCH", f"{CONTACTS}/{created['id']}"),
        ("DELETE", f"{CONTACTS}/{created['id']}"),
    ]:
        r = await client.request(method, url, headers=other.headers, json={"name": "x"} if method != "GET" else None)
        assert_error(r, 403, "insufficient_scope")


async def test_another_organizations_contacts_are_invisible(client, tenant, other_tenant):
    mine = await create(client, tenant, phone=ASHA, name="Asha Mine", tags=["vip"])
    theirs = await create(client, other_tenant, phone=RAVI, name="Asha Theirs", tags=["vip"], email="t@example.com")
    # Phones are unique per organization only.
    same_phone = await create(client, other_tenant, phone="098765 43210", name="Their Asha")
    assert same_phone["phone"] == ASHA

    url = f"{CONTACTS}/{theirs['id']}"
    assert_error(await client.get(url, headers=tenant.headers), 404, "contact_not_found")
    r = await client.patch(url, headers=tenant.headers, json={"name": "Hijacked", "tags": ["stolen"]})
    assert_error(r, 404, "contact_not_found")
    assert_error(await client.delete(url, headers=tenant.headers), 404, "contact_not_found")

    # Not in any list, search or tag filter of ours.
    for params in ({}, {"search": "asha"}, {"search": "as"}, {"search": "98765"}, {"tag": "vip"}, {"limit": 100}):
        body = await listing(client, tenant, **params)
        assert [c["id"] for c in body["data"]] == [mine["id"]], params
        assert body["pagination"]["total"] == 1
    for text in ("theirs", "98123", "+91 98123", "12"):
        assert await search(client, tenant, text) == set(), text

    # Untouched on their side.
    r = await client.get(url, headers=other_tenant.headers)
    assert r.status_code == 200
    assert r.json() == theirs
    # And ours is just as invisible to them.
    assert_error(await client.get(f"{CONTACTS}/{mine['id']}", headers=other_tenant.headers), 404)
    assert_error(await client.delete(f"{CONTACTS}/{mine['id']}", headers=other_tenant.headers), 404)
    assert (await client.get(f"{CONTACTS}/{mine['id']}", headers=tenant.headers)).json() == mine

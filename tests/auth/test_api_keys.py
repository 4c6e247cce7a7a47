"""API keys as a client meets them: every way to fail authentication answers 401 with its own message,
missing scopes answer 403, and keys are listed (never their secrets), created (secret shown once) and
revoked over the API, within one organization."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kaanha.auth.api_keys import create_api_key
from kaanha.auth.scopes import ALL_SCOPES
from kaanha.kit.clock import clock
from kaanha.runtime import Runtime
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import assert_error

KEYS = f"{API}/api-keys"
CONTACTS = f"{API}/contacts"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KEY_SHAPE = re.compile(r"^kh_[a-z0-9]{10}_[A-Za-z0-9]{40}$")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def well_formed_key() -> str:
    prefix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
    secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    return f"kh_{prefix}_{secret}"


async def add_key(
    runtime: Runtime, tenant: Tenant, *, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> str:
    async with runtime.database.transaction() as session:
        created = await create_api_key(
            session, organization_id=tenant.organization_id, name="extra", scopes=scopes, expires_at=expires_at
        )
    return created.secret


async def keys_of(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await client.get(KEYS, headers=tenant.headers)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


# --- 401: each failure says what is wrong ---------------------------------------------------------------------


async def test_every_way_to_fail_authentication_is_401_with_its_own_message(client, runtime, tenant, frozen_clock):
    revoked = await add_key(runtime, tenant)
    r = await client.get(KEYS, headers=tenant.headers)
    revoked_id = next(k["id"] for k in r.json()["data"] if revoked.startswith(k["prefix"] + "_"))
    assert (await client.delete(f"{KEYS}/{revoked_id}", headers=tenant.headers)).status_code == 200
    expiring = await add_key(runtime, tenant, expires_at=frozen_clock + timedelta(hours=1))
    assert (await client.get(CONTACTS, headers=bearer(expiring))).status_code == 200
    clock.advance(timedelta(hours=1))

    wrong_secret = tenant.key[: -len("x" * 40)] + "A" * 40
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic x"},
        "bare bearer": {"Authorization": "Bearer"},
        "bearer and spaces": {"Authorization": "Bearer    "},
        "token scheme": {"Authorization": f"Token {tenant.key}"},
        "no scheme": {"Authorization": tenant.key},
        "malformed key": bearer("not-a-key"),
        "truncated key": bearer(tenant.key[:-1]),
        "key with junk": bearer(tenant.key + "x"),
        "unknown key": bearer(well_formed_key()),
        "wrong secret": bearer(wrong_secret),
        "revoked key": bearer(revoked),
        "expired key": bearer(expiring),
    }
    messages: dict[str, str] = {}
    for case, headers in cases.items():
        r = await client.get(CONTACTS, headers=headers)
        messages[case] = assert_error(r, 401)["error"]
        assert tenant.key not in r.text
        assert revoked not in r.text

    kinds = {
        "missing": ["missing", "empty"],
        "malformed header": ["basic", "bare bearer", "bearer and spaces", "token scheme", "no scheme"],
        "malformed key": ["malformed key", "truncated key", "key with junk"],
        "unknown": ["unknown key", "wrong secret"],
        "revoked": ["revoked key"],
        "expired": ["expired key"],
    }
    by_kind = {}
    for kind, members in kinds.items():
        found = {messages[case] for case in members}
        assert len(found) == 1, (kind, found)
        by_kind[kind] = found.pop()
    assert len(set(by_kind.values())) == len(by_kind), by_kind  # six kinds, six messages
    assert "missing" in by_kind["missing"].lower()
    assert "malformed" in by_kind["malformed header"].lower()
    assert "unknown" in by_kind["unknown"].lower()
    assert "revoked" in by_kind["revoked"].lower()
    assert "expired" in by_kind["expired"].lower()

    # The tenant's own key still works: none of this locked anything.
    assert (await client.get(CONTACTS, headers=tenant.headers)).status_code == 200


async def test_the_scheme_is_case_insensitive(client, tenant):
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = await client.get(CONTACTS, headers={"Authorization": f"{scheme} {tenant.key}"})
        assert r.status_code == 200, (scheme, r.text)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/status"),
        ("GET", "/contacts"),
        ("POST", "/contacts"),
        ("GET", "/contacts/ctc_x"),
        ("PATCH", "/contacts/ctc_x"),
        ("DELETE", "/contacts/ctc_x"),
        ("GET", "/api-keys"),
        ("POST", "/api-keys"),
        ("DELETE", "/api-keys/key_x"),
    ],
)
async def test_every_endpoint_needs_a_key(client, tenant, method, path):
    r = await client.request(method, f"{API}{path}", json={} if method in ("POST", "PATCH") else None)
    assert_error(r, 401)


async def test_an_expired_key_works_until_its_moment(client, runtime, tenant, frozen_clock):
    key = await add_key(runtime, tenant, expires_at=frozen_clock + timedelta(days=1))
    assert (await client.get(CONTACTS, headers=bearer(key))).status_code == 200
    clock.advance(timedelta(days=1) - timedelta(seconds=1))
    assert (await client.get(CONTACTS, headers=bearer(key))).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert "expired" in assert_error(await client.get(CONTACTS, headers=bearer(key)), 401)["error"]
    clock.advance(timedelta(days=30))
    assert "expired" in assert_error(await client.get(CONTACTS, headers=bearer(key)), 401)["error"]


# --- 403: scopes ----------------------------------------------------------------------------------------------------


async def test_a_key_without_the_scope_is_403_insufficient_scope(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["contacts:read"])
    assert (await client.get(CONTACTS, headers=reader.headers)).status_code == 200
    r = await client.post(CONTACTS, headers=reader.headers, json={"phone": "+919876543210"})
    body = assert_error(r, 403, "insufficient_scope")
    assert "contacts:write" in body["error"]
    # Nothing was written.
    assert (await client.get(CONTACTS, headers=reader.headers)).json()["pagination"]["total"] == 0
    # Managing keys is its own scope too.
    assert_error(await client.get(KEYS, headers=reader.headers), 403, "insufficient_scope")
    assert_error(await client.post(KEYS, headers=reader.headers, json={"name": "more"}), 403, "insufficient_scope")


async def test_scope_is_checked_after_authentication(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["contacts:read"])
    r = await client.post(CONTACTS, json={"phone": "+919876543210"})
    assert_error(r, 401)
    r = await client.post(CONTACTS, headers=bearer(well_formed_key()), json={"phone": "+919876543210"})
    assert_error(r, 401)
    r = await client.post(CONTACTS, headers=reader.headers, json={"bad": "body"})
    assert_error(r, 403, "insufficient_scope")


# --- lastUsedAt ---------------------------------------------------------------------------------------------------


async def test_last_used_at_is_set_when_a_key_is_used(client, runtime, tenant, frozen_clock):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "integration"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["lastUsedAt"] is None

    def entry(keys: list[dict[str, Any]]) -> dict[str, Any]:
        return next(k for k in keys if k["id"] == created["id"])

    assert entry(await keys_of(client, tenant))["lastUsedAt"] is None

    clock.advance(timedelta(minutes=10))
    assert (await client.get(CONTACTS, headers=bearer(created["key"]))).status_code == 200
    assert entry(await keys_of(client, tenant))["lastUsedAt"] == "2026-11-24T10:10:00Z"

    # Used again later: moves on.
    clock.advance(timedelta(hours=2))
    assert (await client.get(CONTACTS, headers=bearer(created["key"]))).status_code == 200
    assert entry(await keys_of(client, tenant))["lastUsedAt"] == "2026-11-24T12:10:00Z"

    # The key doing the listing shows its own use.
    mine = [k for k in await keys_of(client, tenant) if tenant.key.startswith(k["prefix"] + "_")]
    assert len(mine) == 1
    assert mine[0]["lastUsedAt"] == "2026-11-24T12:10:00Z"


async def test_a_refused_key_is_not_marked_used(client, runtime, tenant, frozen_clock):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "soon revoked"})
    created = r.json()
    r = await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    clock.advance(timedelta(minutes=5))
    assert_error(await client.get(CONTACTS, headers=bearer(created["key"])), 401)
    listed = next(k for k in await keys_of(client, tenant) if k["id"] == created["id"])
    assert listed["lastUsedAt"] is None


# --- API keys over the API -------------------------------------------------------------------------------------


async def test_listing_keys_never_shows_secrets(client, runtime, tenant):
    extra = await add_key(runtime, tenant, scopes=["contacts:read"])
    r = await client.get(KEYS, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert tenant.key not in r.text
    assert extra not in r.text
    assert tenant.key.rsplit("_", 1)[1] not in r.text
    body = r.json()
    assert isinstance(body["data"], list)
    keys = body["data"]
    assert len(keys) == 2
    for key in keys:
        assert "key" not in key
        assert "keyHash" not in key
        assert "secret" not in key
        assert set(key) >= {"id", "name", "prefix", "scopes", "expiresAt", "lastUsedAt", "revokedAt", "createdAt"}
        assert not any("_" in field for field in key), key
        assert ISO_UTC.match(key["createdAt"]), key
        assert key["revokedAt"] is None
    prefixes = {k["prefix"] for k in keys}
    assert {tenant.key[:13], extra[:13]} == prefixes
    by_prefix = {k["prefix"]: k for k in keys}
    assert by_prefix[extra[:13]]["scopes"] == ["contacts:read"]
    assert sorted(by_prefix[tenant.key[:13]]["scopes"]) == sorted(ALL_SCOPES)


async def test_a_created_key_is_shown_once_and_works(client, tenant, frozen_clock):
    r = await client.post(
        KEYS,
        headers=tenant.headers,
        json={"name": "CRM sync", "scopes": ["contacts:read", "contacts:write"], "expiresAt": "2027-01-01T00:00:00Z"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert KEY_SHAPE.match(created["key"]), created
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["name"] == "CRM sync"
    assert created["scopes"] == ["contacts:read", "contacts:write"]
    assert created["expiresAt"] == "2027-01-01T00:00:00Z"
    assert created["createdAt"] == "2026-11-24T10:00:00Z"
    assert created["revokedAt"] is None
    assert created["lastUsedAt"] is None

    # It works, within its scopes.
    new = bearer(created["key"])
    r = await client.post(CONTACTS, headers=new, json={"phone": "+919876543210", "name": "Via new key"})
    assert r.status_code == 201, r.text
    r = await client.get(CONTACTS, headers=tenant.headers)
    assert [c["name"] for c in r.json()["data"]] == ["Via new key"]  # same organization
    assert_error(await client.get(KEYS, headers=new), 403, "insufficient_scope")

    # The secret is never shown again.
    r = await client.get(KEYS, headers=tenant.headers)
    assert created["key"] not in r.text
    listed = next(k for k in r.json()["data"] if k["id"] == created["id"])
    assert "key" not in listed
    assert listed["prefix"] == created["prefix"]
    assert listed["expiresAt"] == "2027-01-01T00:00:00Z"

    # Two keys never share a secret or a prefix.
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "CRM sync"})
    assert r.status_code == 201, r.text
    assert r.json()["key"] != created["key"]
    assert r.json()["prefix"] != created["prefix"]
    assert r.json()["id"] != created["id"]


async def test_a_key_without_scopes_gets_those_of_its_creator(client, runtime, tenant):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "everything"})
    assert r.status_code == 201, r.text
    assert sorted(r.json()["scopes"]) == sorted(ALL_SCOPES)

    limited = await make_tenant(runtime, "Limited", scopes=["contacts:read", "api_keys:read", "api_keys:write"])
    r = await client.post(KEYS, headers=limited.headers, json={"name": "child"})
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == ["api_keys:read", "api_keys:write", "contacts:read"]


async def test_a_key_cannot_grant_scopes_it_lacks(client, runtime):
    limited = await make_tenant(runtime, "Limited", scopes=["contacts:read", "api_keys:read", "api_keys:write"])
    before = await keys_of(client, limited)
    for scopes in (["contacts:write"], ["contacts:read", "contacts:write"], list(ALL_SCOPES)):
        r = await client.post(KEYS, headers=limited.headers, json={"name": "escalate", "scopes": scopes})
        body = assert_error(r, 403, "insufficient_scope")
        assert "contacts:write" in body["error"]
    assert await keys_of(client, limited) == before
    # Granting what it has, or less, is fine.
    r = await client.post(KEYS, headers=limited.headers, json={"name": "narrower", "scopes": ["contacts:read"]})
    assert r.status_code == 201, r.text
    child = bearer(r.json()["key"])
    assert (await client.get(CONTACTS, headers=child)).status_code == 200
    assert_error(await client.post(KEYS, headers=child, json={"name": "grandchild"}), 403, "insufficient_scope")


BAD_KEY_BODIES: list[tuple[str, Any]] = [
    ("unknown scope", {"name": "x", "scopes": ["contacts:read", "contacts:delete"]}),
    ("made-up scope", {"name": "x", "scopes": ["admin"]}),
    ("empty scopes", {"name": "x", "scopes": []}),
    ("scopes as a string", {"name": "x", "scopes": "contacts:read"}),
    ("missing name", {"scopes": ["contacts:read"]}),
    ("empty name", {"name": ""}),
    ("blank name", {"name": "   "}),
    ("name too long", {"name": "n" * 101}),
    ("name as a number", {"name": 7}),
    ("expiry in the past", {"name": "x", "expiresAt": "2020-01-01T00:00:00Z"}),
    ("expiry now", {"name": "x", "expiresAt": "2026-11-24T10:00:00Z"}),
    ("expiry not a date", {"name": "x", "expiresAt": "next week"}),
    ("unknown field", {"name": "x", "role": "admin"}),
    ("NUL in name", {"name": "ci\x00"}),
    ("body is a list", [{"name": "x"}]),
]


@pytest.mark.parametrize(("case", "body"), BAD_KEY_BODIES, ids=[case for case, _ in BAD_KEY_BODIES])
async def test_bad_key_requests_are_400_and_create_nothing(client, tenant, frozen_clock, case, body):
    before = await keys_of(client, tenant)
    r = await client.post(KEYS, headers=tenant.headers, json=body)
    assert_error(r, 400)
    assert len(await keys_of(client, tenant)) == len(before)


async def test_an_unknown_scope_is_named_in_the_error(client, tenant):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "x", "scopes": ["contacts:delete"]})
    assert "contacts:delete" in assert_error(r, 400)["error"]


async def test_an_expiry_without_a_zone_is_read_as_utc(client, tenant, frozen_clock):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "naive", "expiresAt": "2026-11-24T12:00:00"})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] == "2026-11-24T12:00:00Z"
    key = bearer(r.json()["key"])
    assert (await client.get(CONTACTS, headers=key)).status_code == 200
    clock.advance(timedelta(hours=2))
    assert "expired" in assert_error(await client.get(CONTACTS, headers=key), 401)["error"]
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "past", "expiresAt": "2026-11-24T11:00:00"})
    assert_error(r, 400)


async def test_an_expiry_with_an_offset_is_shown_in_utc(client, tenant, frozen_clock):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "ist", "expiresAt": "2026-12-01T10:30:00+05:30"})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] == "2026-12-01T05:00:00Z"


async def test_revoking_a_key_locks_it_out_for_good(client, tenant, frozen_clock):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "temp"})
    created = r.json()
    key = bearer(created["key"])
    assert (await client.get(CONTACTS, headers=key)).status_code == 200

    clock.advance(timedelta(minutes=3))
    r = await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    revoked = r.json()
    assert revoked["id"] == created["id"]
    assert revoked["revokedAt"] == "2026-11-24T10:03:00Z"
    assert "key" not in revoked

    body = assert_error(await client.get(CONTACTS, headers=key), 401)
    assert "revoked" in body["error"].lower()
    assert_error(await client.post(CONTACTS, headers=key, json={"phone": "+919876543210"}), 401)

    listed = next(k for k in await keys_of(client, tenant) if k["id"] == created["id"])
    assert listed["revokedAt"] == "2026-11-24T10:03:00Z"

    # Revoking again changes nothing (the first moment stays).
    clock.advance(timedelta(minutes=3))
    r = await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["revokedAt"] == "2026-11-24T10:03:00Z"
    # Other keys are untouched.
    assert (await client.get(CONTACTS, headers=tenant.headers)).status_code == 200


async def test_a_key_can_revoke_itself(client, runtime, tenant):
    r = await client.get(KEYS, headers=tenant.headers)
    own = next(k for k in r.json()["data"] if tenant.key.startswith(k["prefix"] + "_"))
    r = await client.delete(f"{KEYS}/{own['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert "revoked" in assert_error(await client.get(CONTACTS, headers=tenant.headers), 401)["error"].lower()


async def test_an_unknown_key_id_is_404(client, tenant):
    for key_id in ("key_nope", "x" * 300, "key%00x"):
        r = await client.delete(f"{KEYS}/{key_id}", headers=tenant.headers)
        assert_error(r, 404, "api_key_not_found")


# --- Tenancy --------------------------------------------------------------------------------------------------------


async def test_another_organizations_keys_are_invisible_and_untouchable(client, tenant, other_tenant):
    r = await client.post(KEYS, headers=other_tenant.headers, json={"name": "theirs"})
    theirs = r.json()
    their_ids = {k["id"] for k in await keys_of(client, other_tenant)}
    assert len(their_ids) == 2

    mine = await keys_of(client, tenant)
    assert len(mine) == 1
    assert not their_ids & {k["id"] for k in mine}

    for key_id in their_ids:
        assert_error(await client.delete(f"{KEYS}/{key_id}", headers=tenant.headers), 404, "api_key_not_found")
    # Still working on their side.
    assert (await client.get(CONTACTS, headers=bearer(theirs["key"]))).status_code == 200
    assert (await client.get(CONTACTS, headers=other_tenant.headers)).status_code == 200
    assert all(k["revokedAt"] is None for k in await keys_of(client, other_tenant))


async def test_a_key_acts_only_for_its_organization(client, tenant, other_tenant):
    r = await client.post(CONTACTS, headers=other_tenant.headers, json={"phone": "+919876543210", "name": "Theirs"})
    assert r.status_code == 201
    r = await client.get(CONTACTS, headers=tenant.headers)
    assert r.json()["pagination"]["total"] == 0
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "mine"})
    r = await client.get(CONTACTS, headers=bearer(r.json()["key"]))
    assert r.json()["pagination"]["total"] == 0


async def test_timestamps_are_utc(client, tenant):
    r = await client.post(KEYS, headers=tenant.headers, json={"name": "now"})
    created_at = datetime.fromisoformat(r.json()["createdAt"].replace("Z", "+00:00"))
    assert abs(created_at - datetime.now(UTC)) < timedelta(minutes=1)

"""Webhook endpoints over the API as a client meets them: create (secret shown once), list, edit, delete,
rotate, the delivery log, retries and test pings to a real receiver on loopback, bad input (400 that
writes nothing), unsafe targets, scopes, Idempotency-Key, and another organization's endpoints (404).

No test resolves a real name or connects anywhere but 127.0.0.1: names go through a table resolver
installed on the runtime, and `socket.getaddrinfo` refuses anything that isn't a loopback literal.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from kaanha.auth.api_keys import create_api_key
from kaanha.events.service import emit
from kaanha.events.types import EVENT_TYPES
from kaanha.kit.clock import clock
from kaanha.kit.ids import new_id
from kaanha.models import Event, IdempotencyRecord, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from kaanha.runtime import Runtime
from kaanha.testing.fake_graph import BackgroundServer
from kaanha.testing.webhook_receiver import ReceivedWebhook, WebhookReceiver
from kaanha.webhooks.service import MAX_ENDPOINTS_PER_ORGANIZATION
from tests.conftest import API, Tenant
from tests.helpers import assert_error

WEBHOOKS = f"{API}/webhooks"
PUBLIC_HOST = "hooks.example.com"
PUBLIC_URL = f"https://{PUBLIC_HOST}/kaanha"
# What the table resolver answers; any other name is unresolvable.
DNS = {
    PUBLIC_HOST: ["93.184.216.34"],
    "other.example.com": ["93.184.216.35"],
    "intranet.example.com": ["10.1.2.3"],
    "loopback.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "ipv6-loopback.example.com": ["::1"],
    "half-private.example.com": ["93.184.216.34", "192.168.1.10"],
}
LOOPBACK_LITERALS = {"127.0.0.1", "::1"}


class TableResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str) -> Iterable[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any lookup of a name, or of an address outside loopback, fails the test."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK_LITERALS and host not in {b"127.0.0.1", b"::1"}:
            raise AssertionError(f"a test tried to resolve or reach {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(socket, "gethostbyname", guarded)


@pytest.fixture(autouse=True)
def resolver(runtime: Runtime) -> TableResolver:
    table = TableResolver(DNS)
    runtime.resolver = table
    return table


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    """A real HTTP server on 127.0.0.1 that keeps every POST; each test uses paths of its own."""
    state = WebhookReceiver(hang_seconds=0)
    with BackgroundServer(state.app) as server:
        yield state, server.url


@pytest.fixture
def private_allowed(runtime: Runtime) -> None:
    runtime.settings.allow_private_urls = True


def received_at(receiver: WebhookReceiver, path: str) -> list[ReceivedWebhook]:
    return [item for item in list(receiver.received) if item.path == path]


def unique_path(name: str) -> str:
    return f"/{name}/{new_id('t')}"


async def create(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"url": PUBLIC_URL, "events": ["message.received"], **fields}
    r = await client.post(WEBHOOKS, headers=tenant.headers, json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def count_rows(runtime: Runtime, model: Any) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def stored(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.database.transaction() as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


def verify(secret: str, item: ReceivedWebhook) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(secret).verify(item.body, item.headers)
    return verified


# --- Create, read, list --------------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_endpoint_and_its_secret_once(client, runtime, tenant):
    r = await client.post(
        WEBHOOKS,
        headers=tenant.headers,
        json={"url": PUBLIC_URL, "events": ["message.received", "contact.created"], "description": "CRM sync"},
    )

    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"].startswith("whe_")
    assert created["url"] == PUBLIC_URL
    assert created["events"] == ["message.received", "contact.created"]
    assert created["description"] == "CRM sync"
    assert created["enabled"] is True
    assert created["disabledAt"] is None
    assert created["disabledReason"] is None
    assert created["failingSince"] is None
    assert created["createdAt"].endswith("Z")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a secret the standardwebhooks library accepts

    # Never shown again, and stored only encrypted.
    got = await client.get(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers)
    assert got.status_code == 200, got.text
    assert got.json() == {key: value for key, value in created.items() if key != "secret"}
    listed = await client.get(WEBHOOKS, headers=tenant.headers)
    assert secret not in listed.text
    assert "secret" not in listed.json()["data"][0]
    row = await stored(runtime, created["id"])
    assert secret not in row.secret_encrypted
    assert runtime.secret_box.decrypt(row.secret_encrypted) == secret
    assert row.organization_id == tenant.organization_id


async def test_each_endpoint_gets_its_own_secret(client, tenant):
    first = await create(client, tenant)
    second = await create(client, tenant)

    assert first["secret"] != second["secret"]


async def test_defaults_and_normalized_events(client, tenant):
    everything = await create(client, tenant, events=["message.read", "*"])
    repeated = await create(client, tenant, events=["contact.created", "contact.created", "message.sent"])
    quiet = await create(client, tenant, enabled=False, description="")

    assert everything["events"] == ["*"]
    assert repeated["events"] == ["contact.created", "message.sent"]
    assert quiet["enabled"] is False
    assert quiet["description"] is None
    assert everything["description"] is None


async def test_every_known_event_type_can_be_subscribed(client, tenant):
    created = await create(client, tenant, events=list(EVENT_TYPES))

    assert created["events"] == list(EVENT_TYPES)


async def test_list_is_paged_newest_first(client, tenant, frozen_clock):
    ids = []
    for n in range(3):
        ids.append((await create(client, tenant, description=f"hook {n}"))["id"])
        clock.advance(timedelta(seconds=1))

    first = await client.get(WEBHOOKS, headers=tenant.headers, params={"limit": 2})
    second = await client.get(WEBHOOKS, headers=tenant.headers, params={"limit": 2, "page": 2})

    assert first.status_code == 200, first.text
    assert first.json()["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    assert [w["id"] for w in first.json()["data"]] == [ids[2], ids[1]]
    assert [w["id"] for w in second.json()["data"]] == [ids[0]]
    for query in ({"page": 0}, {"limit": 0}, {"limit": 101}, {"page": "x"}):
        assert_error(await client.get(WEBHOOKS, headers=tenant.headers, params=query), 400, "validation_error")


async def test_an_empty_list(client, tenant):
    r = await client.get(WEBHOOKS, headers=tenant.headers)

    assert r.status_code == 200
    assert r.json() == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0}}


async def test_an_unknown_id_is_404(client, tenant):
    for method, path in [
        ("GET", "whe_nope"),
        ("PATCH", "whe_nope"),
        ("DELETE", "whe_nope"),
        ("POST", "whe_nope/rotate-secret"),
        ("GET", "whe_nope/deliveries"),
        ("POST", "whe_nope/deliveries/whd_nope/retry"),
        ("POST", "whe_nope/test"),
    ]:
        body = {} if method in {"POST", "PATCH"} else None
        r = await client.request(method, f"{WEBHOOKS}/{path}", headers=tenant.headers, json=body)
        assert_error(r, 404, "webhook_endpoint_not_found")


# --- Bad input: 400, nothing written -------------------------------------------------------------------------------

INVALID_BODIES = [
    ({"events": ["*"]}, "url: is required"),
    ({"url": PUBLIC_URL}, "events: is required"),
    ({"url": 42, "events": ["*"]}, "url"),
    ({"url": None, "events": ["*"]}, "url"),
    ({"url": "", "events": ["*"]}, "url"),
    ({"url": PUBLIC_URL, "events": "message.received"}, "events"),
    ({"url": PUBLIC_URL, "events": {"message.received": True}}, "events"),
    ({"url": PUBLIC_URL, "events": []}, "at least one event type"),
    ({"url": PUBLIC_URL, "events": [1]}, "events.0"),
    ({"url": PUBLIC_URL, "events": [None]}, "events.0"),
    ({"url": PUBLIC_URL, "events": ["*"] * 500}, "events"),
    ({"url": PUBLIC_URL, "events": ["*"], "description": 7}, "description"),
    ({"url": PUBLIC_URL, "events": ["*"], "description": "x" * 501}, "description"),
    ({"url": PUBLIC_URL, "events": ["*"], "enabled": "maybe"}, "enabled"),
    ({"url": PUBLIC_URL, "events": ["*"], "enabled": None}, "enabled"),
    ({"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_mine"}, "secret: is not a known field"),
    ({"url": f"https://{PUBLIC_HOST}/" + "a" * 2048, "events": ["*"]}, "at most 2048 characters"),
    ({"url": "ftp://hooks.example.com/x", "events": ["*"]}, "http:// or https://"),
    ({"url": "javascript:alert(1)", "events": ["*"]}, "http:// or https://"),
    ({"url": "hooks.example.com/kaanha", "events": ["*"]}, "http:// or https://"),
    ({"url": "https:///path-only", "events": ["*"]}, "http:// or https://"),
    ({"url": "https://hooks.example.com:99999/", "events": ["*"]}, "not a valid URL"),
    ({"url": "https://[::1/", "events": ["*"]}, "not a valid URL"),
    ({"url": "https://hooks.example.com/a b", "events": ["*"]}, "spaces"),
    ({"url": "https://hooks.example.com/\u0000", "events": ["*"]}, "url"),
    ({"url": "https://user:pw@hooks.example.com/", "events": ["*"]}, "user name or password"),
    ([{"url": PUBLIC_URL, "events": ["*"]}], None),
    ("just a string", None),
    (None, None),
]


@pytest.mark.parametrize(("body", "says"), INVALID_BODIES)
async def test_invalid_bodies_are_400_and_write_nothing(client, runtime, tenant, resolver, body, says):
    r = await client.post(WEBHOOKS, headers=tenant.headers, json=body)

    error = assert_error(r, 400)
    if says is not None:
        assert says in error["error"], error
    assert await count_rows(runtime, WebhookEndpoint) == 0
    assert resolver.asked == []


async def test_bodies_that_are_not_json_are_400(client, tenant):
    headers = {**tenant.headers, "Content-Type": "application/json"}
    for content in (b"{", b"", b"\xff\xfe", b'{"url": "https://hooks.example.com/", "events": ["*"],}'):
        r = await client.post(WEBHOOKS, headers=headers, content=content)
        assert_error(r, 400)


async def test_an_unknown_event_type_is_named_with_the_valid_ones(client, runtime, tenant):
    r = await client.post(
        WEBHOOKS,
        headers=tenant.headers,
        json={"url": PUBLIC_URL, "events": ["message.received", "message.recieved", "order.paid"]},
    )

    error = assert_error(r, 400, "validation_error")["error"]
    assert "'message.recieved'" in error
    assert "'order.paid'" in error
    for known in EVENT_TYPES:
        assert known in error
    assert "'*'" in error
    assert await count_rows(runtime, WebhookEndpoint) == 0


async def test_many_unknown_event_types_make_a_short_error(client, tenant):
    events = [f"nope.{n}-" + "x" * 500 for n in range(len(EVENT_TYPES))]

    error = assert_error(
        await client.post(WEBHOOKS, headers=tenant.headers, json={"url": PUBLIC_URL, "events": events}), 400
    )

    assert f"and {len(events) - 5} more" in error["error"]
    assert len(error["error"]) < 2000


async def test_a_huge_body_is_413_and_writes_nothing(client, runtime, tenant):
    body = {"url": PUBLIC_URL, "events": ["*"], "description": "x" * (2 * 1024 * 1024)}

    r = await client.post(WEBHOOKS, headers=tenant.headers, json=body)

    assert_error(r, 413, "payload_too_large")
    assert await count_rows(runtime, WebhookEndpoint) == 0


# --- Unsafe targets ------------------------------------------------------------------------------------------------

UNSAFE_URLS = [
    "https://localhost/",
    "http://localhost:8080/hooks",
    "https://printer.local/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.1/",
    "http://192.168.0.5:8000/hook",
    "http://172.16.3.4/",
    "http://127.0.0.1/",
    "http://127.10.20.30:9000/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fd00::1]/",
    "http://0.0.0.0/",
    "https://loopback.example.com/hooks",
    "https://intranet.example.com/hooks",
    "https://metadata.example.com/",
    "https://ipv6-loopback.example.com/",
    "https://half-private.example.com/",
    "https://unresolvable.example.com/",
    "https://xn--nxasmq6b.example.com/",
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
async def test_unsafe_targets_are_refused_and_write_nothing(client, runtime, tenant, url):
    r = await client.post(WEBHOOKS, headers=tenant.headers, json={"url": url, "events": ["*"]})

    error = assert_error(r, 400, "unsafe_url")
    assert "use a public URL" in error["error"] or "cannot be resolved" in error["error"]
    assert await count_rows(runtime, WebhookEndpoint) == 0


async def test_names_are_checked_through_the_runtime_resolver(client, tenant, resolver):
    await create(client, tenant, url="https://hooks.example.com/a")
    assert_error(
        await client.post(
            WEBHOOKS, headers=tenant.headers, json={"url": "https://loopback.example.com/", "events": ["*"]}
        ),
        400,
        "unsafe_url",
    )
    await create(client, tenant, url="https://93.184.216.34/literal")

    assert resolver.asked == ["hooks.example.com", "loopback.example.com"]


async def test_an_unresolvable_host_says_so(client, tenant):
    r = await client.post(
        WEBHOOKS, headers=tenant.headers, json={"url": "https://nowhere.example.com/", "events": ["*"]}
    )

    assert "cannot be resolved" in assert_error(r, 400, "unsafe_url")["error"]


async def test_private_targets_are_allowed_when_the_setting_says_so(client, runtime, tenant, resolver, private_allowed):
    for url in (
        "http://127.0.0.1:9/hook",
        "https://localhost/hook",
        "http://10.0.0.1/",
        "https://nowhere.example.com/",
    ):
        created = await create(client, tenant, url=url)
        assert created["url"] == url
    # Nothing is looked up when addresses don't matter; the scheme still does.
    assert resolver.asked == []
    r = await client.post(WEBHOOKS, headers=tenant.headers, json={"url": "ftp://127.0.0.1/", "events": ["*"]})
    assert_error(r, 400)


# --- The limit per organization ------------------------------------------------------------------------------------


async def test_an_organization_has_at_most_twenty_endpoints(client, runtime, tenant, other_tenant):
    for _ in range(MAX_ENDPOINTS_PER_ORGANIZATION):
        await create(client, tenant)

    r = await client.post(WEBHOOKS, headers=tenant.headers, json={"url": PUBLIC_URL, "events": ["*"]})

    error = assert_error(r, 400, "too_many_webhook_endpoints")
    assert "20" in error["error"]
    assert await count_rows(runtime, WebhookEndpoint) == MAX_ENDPOINTS_PER_ORGANIZATION
    # Another organization has its own twenty; deleting one makes room.
    await create(client, other_tenant)
    first = (await client.get(WEBHOOKS, headers=tenant.headers)).json()["data"][0]
    assert (await client.delete(f"{WEBHOOKS}/{first['id']}", headers=tenant.headers)).status_code == 204
    await create(client, tenant)


async def test_concurrent_creations_never_pass_the_limit(client, runtime, tenant):
    for _ in range(MAX_ENDPOINTS_PER_ORGANIZATION - 1):
        await create(client, tenant)

    answers = await asyncio.gather(
        *(client.post(WEBHOOKS, headers=tenant.headers, json={"url": PUBLIC_URL, "events": ["*"]}) for _ in range(4))
    )

    assert sorted(r.status_code for r in answers) == [201, 400, 400, 400], [r.text for r in answers]
    for r in answers:
        if r.status_code == 400:
            assert_error(r, 400, "too_many_webhook_endpoints")
    assert await count_rows(runtime, WebhookEndpoint) == MAX_ENDPOINTS_PER_ORGANIZATION


# --- Idempotency-Key -----------------------------------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_answers_the_first_response(client, runtime, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "create-hook-1"}
    body = {"url": PUBLIC_URL, "events": ["message.received"], "description": "once"}

    first = await client.post(WEBHOOKS, headers=headers, json=body)
    again = await client.post(WEBHOOKS, headers=headers, json=body)
    other_body = await client.post(WEBHOOKS, headers=headers, json={**body, "description": "twice"})

    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert_error(other_body, 409, "idempotency_key_reused")
    assert await count_rows(runtime, WebhookEndpoint) == 1
    # The stored answer keeps the secret encrypted, like the endpoint's row.
    async with runtime.database.transaction() as session:
        record = await session.scalar(select(IdempotencyRecord))
    assert record is not None
    assert first.json()["secret"] not in str(record.response_body)


async def test_a_refused_create_is_not_remembered_by_its_key(client, runtime, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "create-hook-2"}
    body = {"url": "https://localhost/", "events": ["*"]}

    assert_error(await client.post(WEBHOOKS, headers=headers, json=body), 400, "unsafe_url")
    assert_error(await client.post(WEBHOOKS, headers=headers, json=body), 400, "unsafe_url")

    assert await count_rows(runtime, IdempotencyRecord) == 0


# --- Update and delete ---------------------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_given(client, tenant, resolver):
    created = await create(client, tenant, description="first", events=["message.received"])
    url = f"{WEBHOOKS}/{created['id']}"

    events = await client.patch(url, headers=tenant.headers, json={"events": ["contact.created", "*"]})
    described = await client.patch(url, headers=tenant.headers, json={"description": "second"})
    moved = await client.patch(url, headers=tenant.headers, json={"url": "https://other.example.com/v2"})
    off = await client.patch(url, headers=tenant.headers, json={"enabled": False})
    cleared = await client.patch(url, headers=tenant.headers, json={"description": None})

    assert events.status_code == 200, events.text
    assert events.json()["events"] == ["*"]
    assert described.json()["description"] == "second"
    assert described.json()["events"] == ["*"]
    assert moved.json()["url"] == "https://other.example.com/v2"
    assert off.json()["enabled"] is False
    # Turned off by its owner, not by us: no disabledAt.
    assert off.json()["disabledAt"] is None
    assert cleared.json()["description"] is None
    final = (await client.get(url, headers=tenant.headers)).json()
    assert final == {**cleared.json()}
    assert final["url"] == "https://other.example.com/v2"
    assert "secret" not in final
    assert resolver.asked == [PUBLIC_HOST, "other.example.com"]


async def test_an_empty_patch_changes_nothing(client, tenant):
    created = await create(client, tenant)

    r = await client.patch(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers, json={})

    assert r.status_code == 200, r.text
    assert {k: v for k, v in r.json().items() if k != "updatedAt"} == {
        k: v for k, v in created.items() if k not in {"secret", "updatedAt"}
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "https://localhost/"}, "unsafe_url"),
        ({"url": "https://loopback.example.com/"}, "unsafe_url"),
        ({"url": "ftp://hooks.example.com/"}, "validation_error"),
        ({"url": None}, "invalid_request"),
        ({"events": []}, "validation_error"),
        ({"events": ["message.recieved"]}, "validation_error"),
        ({"events": None}, "invalid_request"),
        ({"enabled": None}, "invalid_request"),
        ({"enabled": "perhaps"}, "validation_error"),
        ({"description": "x" * 501}, "validation_error"),
        ({"secret": "whsec_x"}, "validation_error"),
        ({"id": "whe_other"}, "validation_error"),
        ({"description": "fine", "url": "http://10.0.0.1/"}, "unsafe_url"),
    ],
)
async def test_an_invalid_patch_is_400_and_changes_nothing(client, runtime, tenant, body, code):
    created = await create(client, tenant, description="kept")
    before = await stored(runtime, created["id"])

    r = await client.patch(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers, json=body)

    assert_error(r, 400, code)
    after = await stored(runtime, created["id"])
    assert (after.url, after.events, after.description, after.enabled, after.updated_at) == (
        before.url,
        before.events,
        before.description,
        before.enabled,
        before.updated_at,
    )


async def test_enabling_an_endpoint_we_disabled_clears_its_failure_record(client, runtime, tenant, frozen_clock):
    created = await create(client, tenant)
    async with runtime.database.transaction() as session:
        row = await session.get(WebhookEndpoint, created["id"])
        assert row is not None
        row.enabled = False
        row.failing_since = frozen_clock - timedelta(days=3)
        row.disabled_at = frozen_clock
        row.disabled_reason = "Failing since 2026-11-21 10:00 UTC: HTTP 503"
    url = f"{WEBHOOKS}/{created['id']}"
    shown = (await client.get(url, headers=tenant.headers)).json()
    assert shown["enabled"] is False
    assert shown["disabledAt"] == "2026-11-24T10:00:00Z"
    assert shown["failingSince"] == "2026-11-21T10:00:00Z"
    assert shown["disabledReason"].startswith("Failing since")

    # Other edits keep the record; enabling clears it.
    described = await client.patch(url, headers=tenant.headers, json={"description": "fixed the server"})
    assert described.json()["disabledAt"] == "2026-11-24T10:00:00Z"
    r = await client.patch(url, headers=tenant.headers, json={"enabled": True})

    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    assert r.json()["disabledAt"] is None
    assert r.json()["disabledReason"] is None
    assert r.json()["failingSince"] is None
    assert (await client.get(url, headers=tenant.headers)).json() == r.json()


async def test_a_new_url_starts_a_new_failure_record(client, runtime, tenant, frozen_clock):
    created = await create(client, tenant)
    async with runtime.database.transaction() as session:
        row = await session.get(WebhookEndpoint, created["id"])
        assert row is not None
        row.failing_since = frozen_clock - timedelta(hours=5)

    r = await client.patch(
        f"{WEBHOOKS}/{created['id']}", headers=tenant.headers, json={"url": "https://other.example.com/"}
    )

    assert r.json()["failingSince"] is None


async def test_delete_removes_the_endpoint_and_its_log(client, runtime, tenant):
    created = await create(client, tenant)
    kept = await create(client, tenant)
    await log_attempts(runtime, tenant, created["id"], [True, False])

    r = await client.delete(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers)

    assert r.status_code == 204
    assert r.content == b""
    assert_error(await client.get(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers), 404)
    assert_error(await client.delete(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers), 404)
    listed = (await client.get(WEBHOOKS, headers=tenant.headers)).json()
    assert [w["id"] for w in listed["data"]] == [kept["id"]]
    assert await count_rows(runtime, WebhookDelivery) == 0
    assert await count_rows(runtime, WebhookAttempt) == 0


async def test_the_current_subscription_decides_which_events_are_delivered(client, runtime, tenant):
    created = await create(client, tenant, events=["contact.created"])
    await client.patch(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers, json={"events": ["contact.deleted"]})

    async with runtime.database.transaction() as session:
        await emit(session, organization_id=tenant.organization_id, type="contact.created", data={"id": "c1"})
        await emit(session, organization_id=tenant.organization_id, type="contact.deleted", data={"id": "c1"})

    async with runtime.database.transaction() as session:
        types = list(await session.scalars(select(WebhookDelivery.event_type)))
    assert types == ["contact.deleted"]


# --- Secret rotation -----------------------------------------------------------------------------------------------


async def test_rotation_issues_a_new_secret_and_keeps_the_old_one_for_a_day(client, runtime, tenant, frozen_clock):
    created = await create(client, tenant)
    url = f"{WEBHOOKS}/{created['id']}/rotate-secret"

    r = await client.post(url, headers=tenant.headers)

    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["id"] == created["id"]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"] == "2026-11-25T10:00:00Z"
    row = await stored(runtime, created["id"])
    assert runtime.secret_box.decrypt(row.secret_encrypted) == rotated["secret"]
    assert row.previous_secret_encrypted is not None
    assert runtime.secret_box.decrypt(row.previous_secret_encrypted) == created["secret"]
    assert row.previous_secret_expires_at == frozen_clock + timedelta(hours=24)
    got = await client.get(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers)
    assert rotated["secret"] not in got.text
    assert created["secret"] not in got.text

    # Rotating again within the day: the previous secret is the one just replaced.
    clock.advance(timedelta(hours=2))
    again = (await client.post(url, headers=tenant.headers)).json()

    assert again["secret"] not in {created["secret"], rotated["secret"]}
    assert again["previousSecretExpiresAt"] == "2026-11-25T12:00:00Z"
    row = await stored(runtime, created["id"])
    assert row.previous_secret_encrypted is not None
    assert runtime.secret_box.decrypt(row.previous_secret_encrypted) == rotated["secret"]
    assert runtime.secret_box.decrypt(row.secret_encrypted) == again["secret"]


# --- The delivery log ----------------------------------------------------------------------------------------------


async def log_attempts(
    runtime: Runtime,
    tenant: Tenant,
    endpoint_id: str,
    outcomes: list[bool],
    *,
    event_type: str = "message.received",
    status: str = "pending",
    at: datetime | None = None,
) -> tuple[str, list[str]]:
    """A delivery of a new event to the endpoint with one attempt per outcome, written as the dispatcher would."""
    start = at or datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    async with runtime.database.transaction() as session:
        event = Event(
            id=new_id("evt"),
            organization_id=tenant.organization_id,
            type=event_type,
            data={"id": "x"},
            created_at=start,
        )
        session.add(event)
        delivery = WebhookDelivery(
            id=new_id("whd"),
            organization_id=tenant.organization_id,
            endpoint_id=endpoint_id,
            event_id=event.id,
            event_type=event_type,
            status=status,
            attempts=len(outcomes),
            next_attempt_at=start + timedelta(minutes=30) if status == "pending" else None,
            created_at=start,
        )
        session.add(delivery)
        await session.flush()
        attempt_ids = []
        for number, success in enumerate(outcomes, start=1):
            attempt = WebhookAttempt(
                id=new_id("wha"),
                organization_id=tenant.organization_id,
                delivery_id=delivery.id,
                endpoint_id=endpoint_id,
                event_id=event.id,
                event_type=event_type,
                attempt=number,
                succeeded=success,
                status_code=200 if success else 503,
                duration_ms=12 * number,
                response_excerpt="ok" if success else "busy",
                error=None if success else "HTTP 503",
                trigger="schedule",
                created_at=start + timedelta(minutes=number),
            )
            session.add(attempt)
            attempt_ids.append(attempt.id)
    return delivery.id, attempt_ids


async def test_the_delivery_log_lists_each_attempt_newest_first(client, runtime, tenant):
    created = await create(client, tenant)
    failing_id, failing_attempts = await log_attempts(runtime, tenant, created["id"], [False, False])
    done_id, done_attempts = await log_attempts(
        runtime,
        tenant,
        created["id"],
        [False, True],
        event_type="contact.created",
        status="succeeded",
        at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
    )
    other = await create(client, tenant)
    await log_attempts(runtime, tenant, other["id"], [True])

    r = await client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=tenant.headers)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 4, "totalPages": 1}
    assert [a["id"] for a in body["data"]] == [*reversed(done_attempts), *reversed(failing_attempts)]
    newest = body["data"][0]
    assert set(newest) >= {
        "id",
        "deliveryId",
        "eventId",
        "eventType",
        "attempt",
        "success",
        "statusCode",
        "durationMs",
        "responseExcerpt",
        "error",
        "trigger",
        "createdAt",
        "deliveryStatus",
        "nextAttemptAt",
    }
    assert newest["deliveryId"] == done_id
    assert newest["eventType"] == "contact.created"
    assert newest["eventId"].startswith("evt_")
    assert newest["attempt"] == 2
    assert newest["success"] is True
    assert newest["statusCode"] == 200
    assert newest["durationMs"] == 24
    assert newest["responseExcerpt"] == "ok"
    assert newest["error"] is None
    assert newest["trigger"] == "schedule"
    assert newest["createdAt"] == "2026-11-24T09:32:00Z"
    assert newest["deliveryStatus"] == "succeeded"
    assert newest["nextAttemptAt"] is None
    pending = body["data"][2]
    assert pending["deliveryId"] == failing_id
    assert pending["success"] is False
    assert pending["statusCode"] == 503
    assert pending["error"] == "HTTP 503"
    assert pending["deliveryStatus"] == "pending"
    assert pending["nextAttemptAt"] == "2026-11-24T09:30:00Z"


async def test_the_delivery_log_filters_and_pages(client, runtime, tenant):
    created = await create(client, tenant)
    await log_attempts(runtime, tenant, created["id"], [False, False, True])
    await log_attempts(runtime, tenant, created["id"], [True], event_type="contact.updated")
    url = f"{WEBHOOKS}/{created['id']}/deliveries"

    async def listing(**params: Any) -> dict[str, Any]:
        r = await client.get(url, headers=tenant.headers, params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    assert (await listing(status="failed"))["pagination"]["total"] == 2
    assert all(not a["success"] for a in (await listing(status="failed"))["data"])
    assert (await listing(status="succeeded"))["pagination"]["total"] == 2
    assert [a["eventType"] for a in (await listing(eventType="contact.updated"))["data"]] == ["contact.updated"]
    assert (await listing(eventType="message.received", status="succeeded"))["pagination"]["total"] == 1
    assert (await listing(eventType="contact.deleted"))["data"] == []
    paged = await listing(limit=3, page=2)
    assert paged["pagination"] == {"page": 2, "limit": 3, "total": 4, "totalPages": 2}
    assert len(paged["data"]) == 1

    for params in ({"status": "pending"}, {"status": ""}, {"eventType": "order.paid"}, {"limit": 500}, {"page": -1}):
        assert_error(await client.get(url, headers=tenant.headers, params=params), 400)
    unknown_type = await client.get(url, headers=tenant.headers, params={"eventType": "order.paid"})
    assert "message.received" in unknown_type.json()["error"]


async def test_an_endpoint_without_deliveries_has_an_empty_log(client, tenant):
    created = await create(client, tenant)

    r = await client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=tenant.headers)

    assert r.json() == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0}}


# --- Retry and test: a real receiver on loopback -------------------------------------------------------------------


async def hook_to(client: httpx.AsyncClient, tenant: Tenant, base: str, path: str, **fields: Any) -> dict[str, Any]:
    return await create(client, tenant, url=f"{base}{path}", **fields)


async def test_a_test_ping_reaches_the_receiver_signed(client, tenant, receiver, private_allowed):
    state, base = receiver
    path = unique_path("ping")
    created = await hook_to(client, tenant, base, path, events=["message.received"])

    r = await client.post(f"{WEBHOOKS}/{created['id']}/test", headers=tenant.headers)

    assert r.status_code == 200, r.text
    result = r.json()
    assert result["success"] is True
    assert result["statusCode"] == 200
    assert isinstance(result["durationMs"], int)
    assert result["durationMs"] >= 0
    assert result["error"] is None
    assert result["eventType"] == "ping"
    assert result["trigger"] == "manual"
    assert result["deliveryStatus"] == "succeeded"
    (arrived,) = received_at(state, path)
    event = verify(created["secret"], arrived)
    assert event["type"] == "ping"
    assert event["id"] == result["eventId"]
    assert arrived.headers["webhook-id"]
    assert created["secret"] not in arrived.body.decode()
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(arrived.body, arrived.headers)
    # The ping's attempt is in the log like any other.
    log = (await client.get(f"{WEBHOOKS}/{created['id']}/deliveries", headers=tenant.headers)).json()
    assert [(a["id"], a["eventType"], a["success"]) for a in log["data"]] == [(result["id"], "ping", True)]
    only_pings = await client.get(
        f"{WEBHOOKS}/{created['id']}/deliveries", headers=tenant.headers, params={"eventType": "ping"}
    )
    assert only_pings.json()["pagination"]["total"] == 1


async def test_a_test_ping_reports_a_failing_receiver(client, tenant, receiver, private_allowed):
    state, base = receiver
    path = unique_path("status/500")
    created = await hook_to(client, tenant, base, path)

    r = await client.post(f"{WEBHOOKS}/{created['id']}/test", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["success"] is False
    assert r.json()["statusCode"] == 500
    assert r.json()["responseExcerpt"].startswith("answered 500")
    assert r.json()["deliveryStatus"] == "failed"  # a ping is not retried
    assert r.json()["nextAttemptAt"] is None
    assert len(received_at(state, path)) == 1


async def test_a_test_ping_reports_a_receiver_that_is_not_there(client, tenant, private_allowed):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    created = await create(client, tenant, url=f"http://127.0.0.1:{port}/gone")

    r = await client.post(f"{WEBHOOKS}/{created['id']}/test", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["success"] is False
    assert r.json()["statusCode"] is None
    assert r.json()["error"]


async def test_after_rotation_a_ping_verifies_with_either_secret(client, tenant, receiver, private_allowed):
    state, base = receiver
    path = unique_path("rotated")
    created = await hook_to(client, tenant, base, path)
    rotated = (await client.post(f"{WEBHOOKS}/{created['id']}/rotate-secret", headers=tenant.headers)).json()

    r = await client.post(f"{WEBHOOKS}/{created['id']}/test", headers=tenant.headers)

    assert r.json()["success"] is True, r.text
    (arrived,) = received_at(state, path)
    assert verify(rotated["secret"], arrived)["type"] == "ping"
    assert verify(created["secret"], arrived)["type"] == "ping"


async def test_a_delivery_is_sent_again_on_request(client, runtime, tenant, receiver, private_allowed):
    state, base = receiver
    path = unique_path("retry")
    created = await hook_to(client, tenant, base, path, events=["contact.created"])
    async with runtime.database.transaction() as session:
        event = await emit(
            session,
            organization_id=tenant.organization_id,
            type="contact.created",
            data={"id": "ctc_1", "name": "Asha"},
        )
    async with runtime.database.transaction() as session:
        delivery_id = await session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event.id))
    assert delivery_id is not None
    retry = f"{WEBHOOKS}/{created['id']}/deliveries"

    r = await client.post(f"{retry}/{delivery_id}/retry", headers=tenant.headers)

    assert r.status_code == 200, r.text
    attempt = r.json()
    assert attempt["deliveryId"] == delivery_id
    assert attempt["eventId"] == event.id
    assert attempt["eventType"] == "contact.created"
    assert attempt["success"] is True
    assert attempt["statusCode"] == 200
    assert attempt["trigger"] == "manual"
    assert attempt["deliveryStatus"] == "succeeded"
    assert attempt["nextAttemptAt"] is None
    (arrived,) = received_at(state, path)
    body = verify(created["secret"], arrived)
    assert body == {"id": event.id, "type": "contact.created", "timestamp": body["timestamp"], "data": event.data}

    # The attempt's id from the log works as well, and each send is a new attempt in the log.
    again = await client.post(f"{retry}/{attempt['id']}/retry", headers=tenant.headers)
    assert again.status_code == 200, again.text
    assert again.json()["deliveryId"] == delivery_id
    assert again.json()["id"] != attempt["id"]
    arrivals = received_at(state, path)
    assert len(arrivals) == 2
    assert verify(created["secret"], arrivals[1])["id"] == event.id  # the same event id: receivers can dedupe
    log = (await client.get(retry, headers=tenant.headers)).json()
    assert {a["id"] for a in log["data"]} == {attempt["id"], again.json()["id"]}
    assert log["data"][0]["attempt"] > log["data"][1]["attempt"]


async def test_a_retry_to_a_failing_receiver_reports_the_failure(client, runtime, tenant, receiver, private_allowed):
    state, base = receiver
    path = unique_path("status/503")
    created = await hook_to(client, tenant, base, path)
    delivery_id, _ = await log_attempts(runtime, tenant, created["id"], [False])

    r = await client.post(f"{WEBHOOKS}/{created['id']}/deliveries/{delivery_id}/retry", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["success"] is False
    assert r.json()["statusCode"] == 503
    assert r.json()["deliveryStatus"] in {"pending", "failed"}
    assert len(received_at(state, path)) == 1


async def test_retry_needs_a_delivery_of_this_endpoint(client, runtime, tenant):
    mine = await create(client, tenant)
    other = await create(client, tenant)
    delivery_id, attempt_ids = await log_attempts(runtime, tenant, other["id"], [False])
    url = f"{WEBHOOKS}/{mine['id']}/deliveries"

    for wrong in (delivery_id, attempt_ids[0], "whd_nope", "wha_nope"):
        assert_error(
            await client.post(f"{url}/{wrong}/retry", headers=tenant.headers), 404, "webhook_delivery_not_found"
        )


# --- Scopes and other organizations --------------------------------------------------------------------------------


async def key_of(runtime: Runtime, tenant: Tenant, scopes: list[str]) -> Tenant:
    """Another API key of the same organization, with only these scopes."""
    async with runtime.database.transaction() as session:
        made = await create_api_key(session, organization_id=tenant.organization_id, name="narrow", scopes=scopes)
    return Tenant(organization_id=tenant.organization_id, key=made.secret)


def every_route(endpoint_id: str, delivery_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"{WEBHOOKS}/{endpoint_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"description": "hijacked", "enabled": False}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery_id}/retry", None),
        ("POST", f"{base}/test", None),
    ]


async def test_a_key_without_webhooks_write_may_only_read(client, runtime, tenant):
    created = await create(client, tenant)
    delivery_id, _ = await log_attempts(runtime, tenant, created["id"], [False])
    reader = await key_of(runtime, tenant, ["webhooks:read"])
    assert (await client.get(WEBHOOKS, headers=reader.headers)).status_code == 200
    for method, path, body in every_route(created["id"], delivery_id):
        r = await client.request(method, path, headers=reader.headers, json=body)
        if method == "GET":
            assert r.status_code == 200, (method, path, r.text)
        else:
            error = assert_error(r, 403, "insufficient_scope")
            assert "webhooks:write" in error["error"]
    r = await client.post(WEBHOOKS, headers=reader.headers, json={"url": PUBLIC_URL, "events": ["*"]})
    assert_error(r, 403, "insufficient_scope")
    assert await count_rows(runtime, WebhookEndpoint) == 1
    assert (await stored(runtime, created["id"])).description is None


async def test_a_key_without_webhook_scopes_gets_403_everywhere(client, runtime, tenant):
    created = await create(client, tenant)
    headers = (await key_of(runtime, tenant, ["contacts:read"])).headers
    assert_error(await client.get(WEBHOOKS, headers=headers), 403, "insufficient_scope")
    for method, path, body in every_route(created["id"], "whd_x"):
        assert_error(await client.request(method, path, headers=headers, json=body), 403, "insufficient_scope")
    assert_error(await client.get(WEBHOOKS), 401)


async def test_another_organizations_endpoint_is_404_on_every_route(client, runtime, tenant, other_tenant):
    theirs = await create(client, other_tenant, description="their hook")
    delivery_id, attempt_ids = await log_attempts(runtime, other_tenant, theirs["id"], [False])
    mine = await create(client, tenant)
    before = await stored(runtime, theirs["id"])

    for method, path, body in every_route(theirs["id"], delivery_id):
        r = await client.request(method, path, headers=tenant.headers, json=body)
        assert_error(r, 404, "webhook_endpoint_not_found")
        assert theirs["secret"] not in r.text
        assert "their hook" not in r.text
    # Our endpoint with their delivery or attempt: not found either.
    for wrong in (delivery_id, attempt_ids[0]):
        r = await client.post(f"{WEBHOOKS}/{mine['id']}/deliveries/{wrong}/retry", headers=tenant.headers)
        assert_error(r, 404, "webhook_delivery_not_found")
    listed = await client.get(WEBHOOKS, headers=tenant.headers)
    assert [w["id"] for w in listed.json()["data"]] == [mine["id"]]

    after = await stored(runtime, theirs["id"])
    assert (after.description, after.enabled, after.secret_encrypted, after.updated_at) == (
        before.description,
        before.enabled,
        before.secret_encrypted,
        before.updated_at,
    )
    their_log = await client.get(f"{WEBHOOKS}/{theirs['id']}/deliveries", headers=other_tenant.headers)
    assert their_log.json()["pagination"]["total"] == 1


# --- OpenAPI -------------------------------------------------------------------------------------------------------


async def test_the_routes_are_documented(client):
    schema = (await client.get(f"{API}/openapi.json")).json()
    expected = {
        ("/webhooks", "get"),
        ("/webhooks", "post"),
        ("/webhooks/{webhook_id}", "get"),
        ("/webhooks/{webhook_id}", "patch"),
        ("/webhooks/{webhook_id}", "delete"),
        ("/webhooks/{webhook_id}/rotate-secret", "post"),
        ("/webhooks/{webhook_id}/deliveries", "get"),
        ("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", "post"),
        ("/webhooks/{webhook_id}/test", "post"),
    }
    for path, method in expected:
        operation = schema["paths"][f"{API}{path}"][method]
        assert operation["summary"], (path, method)
        assert operation["description"], (path, method)
        assert "Webhooks" in operation["tags"]
        assert "422" not in operation["responses"]
    created = schema["paths"][f"{API}/webhooks"]["post"]
    assert "201" in created["responses"]
    parameters = {p["name"] for p in created.get("parameters", [])}
    assert "Idempotency-Key" in parameters

"""Errors as a client meets them ({"error", "code"} JSON, right status), the OpenAPI document, and the
per-IP API rate limit (memory and Redis, behind trusted proxies or not)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis_asyncio

from kaanha.app import create_app
from kaanha.config import RateLimitSettings
from kaanha.runtime import Runtime
from tests.conftest import API, make_tenant
from tests.helpers import assert_error
from tests.test_tenancy import all_routes

PEER = "203.0.113.7"


# --- Routing, parsing and validation errors --------------------------------------------------------


@pytest.mark.parametrize("path", [f"{API}/nope", "/api/nothing-here", f"{API}/contacts/x/y/z", "/elsewhere"])
async def test_an_unknown_route_is_404_json(client, tenant, path):
    r = await client.get(path, headers=tenant.headers)

    assert_error(r, 404, "not_found")


async def test_a_wrong_method_is_405_json(client, tenant):
    r = await client.delete(f"{API}/status", headers=tenant.headers)

    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers.get("allow", "")


async def test_invalid_json_is_400_invalid_json(client, tenant):
    r = await client.post(
        f"{API}/contacts",
        headers={**tenant.headers, "Content-Type": "application/json"},
        content=b'{"phone": "+919876543210",',
    )

    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{API}/contacts", {}),
        ("POST", f"{API}/contacts", {"phone": 12345678, "tags": "vip"}),
        ("POST", f"{API}/contacts", {"phone": "+919876543210", "email": "not-an-email"}),
        ("POST", f"{API}/contacts", {"phone": "+919876543210", "unknownField": 1}),
        ("POST", f"{API}/send", {"to": "+919876543210", "type": "carrier-pigeon"}),
        ("POST", f"{API}/send", []),
        ("GET", f"{API}/contacts?limit=0", None),
        ("GET", f"{API}/contacts?limit=101", None),
        ("GET", f"{API}/contacts?page=0", None),
        ("GET", f"{API}/contacts?page=abc", None),
        ("GET", f"{API}/chats?status=CLOSED", None),
    ],
)
async def test_validation_errors_are_400_never_422(client, tenant, method, path, body):
    r = await client.request(method, path, headers=tenant.headers, json=body)

    error = assert_error(r, 400)
    assert error["code"] != "invalid_json"
    assert "Traceback" not in error["error"]


async def test_a_validation_error_names_the_field(client, tenant):
    r = await client.post(f"{API}/contacts", headers=tenant.headers, json={"name": "No phone"})

    error = assert_error(r, 400, "validation_error")
    assert "phone" in error["error"]


async def test_a_json_body_over_1_mb_is_413_json(client, tenant, runtime):
    body = {"phone": "+919876543210", "name": "x", "attributes": {"note": "y" * 1000}, "padding": "z" * (1024 * 1024)}

    r = await client.post(f"{API}/contacts", headers=tenant.headers, json=body)

    assert_error(r, 413, "payload_too_large")
    listed = await client.get(f"{API}/contacts", headers=tenant.headers)
    assert listed.json()["pagination"]["total"] == 0


async def test_a_streamed_json_body_over_1_mb_without_content_length_is_413_json(client, tenant):
    chunk = b" " * (256 * 1024)

    async def body() -> AsyncIterator[bytes]:
        yield b'{"phone": "+919876543210", "name": "'
        for _ in range(6):
            yield chunk
        yield b'"}'

    r = await client.post(
        f"{API}/contacts", headers={**tenant.headers, "Content-Type": "application/json"}, content=body()
    )

    assert_error(r, 413, "payload_too_large")


async def test_a_json_body_just_under_1_mb_is_not_refused_for_its_size(client, tenant):
    body = json.dumps({"phone": "+919876543210", "name": "Asha"}).encode()
    body = body[:-1] + b" " * (1024 * 1024 - len(body)) + b"}"
    assert len(body) == 1024 * 1024

    r = await client.post(
        f"{API}/contacts", headers={**tenant.headers, "Content-Type": "application/json"}, content=body
    )

    assert r.status_code == 201, r.text


async def test_a_content_length_that_is_not_a_number_is_400_json(client, tenant):
    r = await client.post(
        f"{API}/contacts",
        headers={**tenant.headers, "Content-Type": "application/json", "Content-Length": "lots"},
        content=b"{}",
    )

    assert_error(r, 400)


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        (None, "Missing"),
        ("Basic dXNlcjpwYXNz", "Malformed"),
        ("Bearer not-a-key", "Malformed"),
        ("Bearer kh_abcdefghij_" + "A" * 40, "Unknown"),
    ],
)
async def test_bad_api_keys_are_401_json_each_with_its_own_message(client, tenant, authorization, fragment):
    headers = {"Authorization": authorization} if authorization else {}

    r = await client.get(f"{API}/contacts", headers=headers)

    error = assert_error(r, 401, "unauthorized")
    assert fragment in error["error"]


# --- Crashes ---------------------------------------------------------------------------------------


@pytest.fixture
async def crashing_client(runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, runtime=runtime)

    @app.get(f"{API}/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(PEER, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_a_crash_is_a_500_json_with_a_request_id_and_no_traceback(crashing_client):
    r = await crashing_client.get(f"{API}/boom")

    error = assert_error(r, 500, "internal_error")
    assert len(r.headers.get_list("x-request-id")) == 1
    request_id = r.headers["x-request-id"]
    assert request_id
    assert request_id in error["error"]
    for leak in ("Traceback", "RuntimeError", "hunter2", 'File "', "boom"):
        assert leak not in r.text


async def test_a_crash_reports_the_callers_request_id(crashing_client):
    r = await crashing_client.get(f"{API}/boom", headers={"X-Request-ID": "req-from-the-client-42"})

    error = assert_error(r, 500, "internal_error")
    assert r.headers["x-request-id"] == "req-from-the-client-42"
    assert "req-from-the-client-42" in error["error"]


async def test_every_response_carries_a_request_id(client, tenant):
    ok = await client.get(f"{API}/status", headers=tenant.headers)
    missing = await client.get(f"{API}/nope", headers=tenant.headers)

    assert ok.headers["x-request-id"]
    assert missing.headers["x-request-id"]
    assert ok.headers["x-request-id"] != missing.headers["x-request-id"]


# --- OpenAPI ---------------------------------------------------------------------------------------


async def test_openapi_documents_every_api_route_with_bearer_auth_and_error_responses(app, client):
    r = await client.get(f"{API}/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    paths = schema["paths"]

    bearer = [
        name
        for name, scheme in schema["components"]["securitySchemes"].items()
        if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer"
    ]
    assert bearer, schema["components"].get("securitySchemes")
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "code"]

    documented = 0
    for route in all_routes(app):
        path = str(route.path)
        if not path.startswith("/api/") or not getattr(route, "include_in_schema", False):
            continue
        if path.startswith("/api/webhooks/"):
            continue  # Meta's callback: authenticated by Meta's signature, not by an API key
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            operation = paths.get(path, {}).get(method.lower())
            assert operation is not None, f"{method} {path} is missing from the OpenAPI document"
            documented += 1
            securities = {name for requirement in operation.get("security", []) for name in requirement}
            assert securities & set(bearer), f"{method} {path} has no bearer security"
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path} documents 422"
            for status in ("400", "401", "404", "429", "500"):
                assert status in responses, f"{method} {path} does not document {status}"
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}: {content}"
    assert documented >= 15

    assert "HTTPValidationError" not in json.dumps(schema)
    assert '"422"' not in json.dumps(schema)


async def test_the_docs_page_is_served(client):
    r = await client.get(f"{API}/docs")

    assert r.status_code == 200
    assert "openapi.json" in r.text


# --- Rate limits -----------------------------------------------------------------------------------


def limited_app(settings, database, **overrides):  # type: ignore[no-untyped-def]
    update = {"rate_limits": RateLimitSettings(api="5/minute", per_recipient="20/hour"), **overrides}
    runtime = Runtime.from_settings(settings.model_copy(update=update), database=database)
    return runtime, create_app(runtime.settings, runtime=runtime)


def client_for(app, ip: str = PEER) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_responses_carry_ratelimit_headers_and_the_sixth_request_is_429(settings, database, runtime):
    limited_runtime, app = limited_app(settings, database)
    tenant = await make_tenant(limited_runtime, "Limited")
    async with client_for(app) as client:
        remaining = []
        for _ in range(5):
            r = await client.get(f"{API}/status", headers=tenant.headers)
            assert r.status_code == 200, r.text
            assert r.headers["ratelimit-limit"] == "5"
            assert 1 <= int(r.headers["ratelimit-reset"]) <= 60
            remaining.append(int(r.headers["ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]

        r = await client.get(f"{API}/status", headers=tenant.headers)

    error = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "5/minute" in error["error"]


async def test_the_limit_is_per_client_ip(settings, database, runtime):
    _limited_runtime, app = limited_app(settings, database)
    async with client_for(app, PEER) as first, client_for(app, "198.51.100.20") as second:
        for _ in range(5):
            await first.get(f"{API}/status")
        assert (await first.get(f"{API}/status")).status_code == 429

        r = await second.get(f"{API}/status")

    assert r.status_code == 401  # unaffected by the first client: it gets as far as asking for a key
    assert r.headers["ratelimit-remaining"] == "4"


async def test_the_limit_counts_errors_too_and_covers_media_downloads(settings, database, runtime):
    _limited_runtime, app = limited_app(settings, database)
    async with client_for(app) as client:
        for path in ("/api/media/med_x", f"{API}/nope", f"{API}/contacts", "/api/media/med_y", f"{API}/status"):
            await client.get(path)

        r = await client.get("/api/media/med_z")

    assert_error(r, 429, "rate_limited")


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(settings, database, runtime):
    _limited_runtime, app = limited_app(settings, database)
    async with client_for(app) as client:
        for hop in range(5):
            await client.get(f"{API}/status", headers={"X-Forwarded-For": f"198.51.100.{hop}"})

        r = await client.get(f"{API}/status", headers={"X-Forwarded-For": "198.51.100.99"})

    assert_error(r, 429, "rate_limited")


async def test_x_forwarded_for_is_ignored_when_the_peer_is_not_a_trusted_proxy(settings, database, runtime):
    _limited_runtime, app = limited_app(settings, database, trusted_proxies=["10.0.0.0/8"])
    async with client_for(app, PEER) as client:
        for hop in range(5):
            await client.get(f"{API}/status", headers={"X-Forwarded-For": f"198.51.100.{hop}"})

        r = await client.get(f"{API}/status", headers={"X-Forwarded-For": "198.51.100.99"})

    assert_error(r, 429, "rate_limited")


async def test_x_forwarded_for_from_a_trusted_proxy_limits_the_rightmost_untrusted_hop(settings, database, runtime):
    _limited_runtime, app = limited_app(settings, database, trusted_proxies=["10.0.0.0/8"])
    async with client_for(app, "10.0.0.2") as proxy:
        # The client can write anything to the left of what our proxies append; only the rightmost
        # address that is not one of our proxies counts.
        for spoofed in range(5):
            r = await proxy.get(f"{API}/status", headers={"X-Forwarded-For": f"6.6.6.{spoofed}, 198.51.100.9"})
            assert r.status_code == 401
        limited = await proxy.get(f"{API}/status", headers={"X-Forwarded-For": "7.7.7.7, 198.51.100.9, 10.0.0.3"})
        other_client = await proxy.get(f"{API}/status", headers={"X-Forwarded-For": "198.51.100.10"})
        no_header = await proxy.get(f"{API}/status")

    assert_error(limited, 429, "rate_limited")
    assert other_client.status_code == 401
    assert other_client.headers["ratelimit-remaining"] == "4"
    assert no_header.status_code == 401  # the proxy itself is a separate client


# --- Rate limits through Redis ---------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


async def keys_for(client: redis_asyncio.Redis, ip: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=f"*{ip}*")]


async def test_the_api_limit_works_through_redis(settings, database, runtime, redis_client):
    # No Redis is a failure of this test, never a skip.
    try:
        assert await redis_client.ping()
    except redis_asyncio.ConnectionError as error:
        pytest.fail(f"Redis at {REDIS_URL} does not answer ({error}); start it to run this test")
    # A documentation address of our own, so that parallel runs and other tests share no keys.
    ip = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    stale = await keys_for(redis_client, ip)
    if stale:
        await redis_client.delete(*stale)
    _limited_runtime, app = limited_app(settings, database, redis_url=REDIS_URL)
    try:
        async with client_for(app, ip) as client:
            statuses = [(await client.get(f"{API}/status")).status_code for _ in range(5)]
            r = await client.get(f"{API}/status")
        assert statuses == [401] * 5
        error = assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert "5/minute" in error["error"]
        assert await keys_for(redis_client, ip), "the limit was not kept in Redis"

        # A second app sharing the Redis sees the same spent limit, as a second server process would.
        _second_runtime, second_app = limited_app(settings, database, redis_url=REDIS_URL)
        async with client_for(second_app, ip) as client:
            again = await client.get(f"{API}/status")
        assert_error(again, 429, "rate_limited")
    finally:
        used = await keys_for(redis_client, ip)
        if used:
            await redis_client.delete(*used)

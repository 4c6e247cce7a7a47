"""Assertions and actions shared by the API tests."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import API, Tenant

PHONE = "+919876543210"


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the API's error envelope: JSON {"error": <sentence>, "code": <snake_case>}."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    assert set(body) >= {"error", "code"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    return body


async def inbound(
    client: httpx.AsyncClient, tenant: Tenant, *, phone: str = PHONE, text: str = "Hi", name: str = "Asha"
) -> dict[str, Any]:
    """A customer writes to the tenant's sandbox number; returns the stored message."""
    response = await client.post(
        f"{API}/sandbox/inbound", json={"from": phone, "name": name, "text": text}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message

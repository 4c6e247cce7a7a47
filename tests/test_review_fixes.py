"""Behaviour a user would notice, fixed after review: text kept as written, proxies from the environment,
and one set of rate-limit headers on a per-recipient refusal."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from kaanha.app import create_app
from kaanha.config import RateLimitSettings, Settings
from kaanha.runtime import Runtime
from tests.conftest import API
from tests.helpers import PHONE, inbound


async def test_message_text_is_sent_exactly_as_written(client, tenant):
    await inbound(client, tenant)
    text = "  indented\n    code block  \n"
    response = await client.post(
        f"{API}/send", json={"to": PHONE, "type": "text", "text": text}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["content"]["text"] == text


def test_trusted_proxies_read_as_a_plain_list_from_the_environment(monkeypatch):
    monkeypatch.setenv("KAANHA_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.2")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.168.1.2"]
    monkeypatch.setenv("KAANHA_TRUSTED_PROXIES", "not-a-network")
    with pytest.raises(ValidationError):
        Settings()


async def test_a_per_recipient_refusal_carries_one_set_of_limit_headers(settings, database, tenant):
    limited = settings.model_copy(update={"rate_limits": RateLimitSettings(api="1000/minute", per_recipient="1/hour")})
    runtime = Runtime.from_settings(limited, database=database)
    app = create_app(limited, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await inbound(client, tenant)
        body = {"to": PHONE, "type": "text", "text": "one"}
        assert (await client.post(f"{API}/send", json=body, headers=tenant.headers)).status_code == 201
        refused = await client.post(f"{API}/send", json=body, headers=tenant.headers)
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Limit"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) > 0


async def test_odd_inputs_found_in_review_are_400s(client, tenant):
    far = await client.post(
        f"{API}/api-keys", json={"name": "x", "expiresAt": "9999-12-31T23:59:59-05:00"}, headers=tenant.headers
    )
    assert far.status_code == 400, far.text
    reaction = await client.post(
        f"{API}/sandbox/inbound", json={"from": PHONE, "type": "reaction", "emoji": "👍"}, headers=tenant.headers
    )
    assert reaction.status_code == 400, reaction.text
    template = {
        "to": PHONE,
        "type": "template",
        "templateName": "order_update",
        "language": "en_US",
        "components": [{"type": "body", "parameters": [{"type": ["a"]}, {"type": "text", "text": "b"}]}],
    }
    bad_parameter = await client.post(f"{API}/send", json=template, headers=tenant.headers)
    assert bad_parameter.status_code == 400, bad_parameter.text
    for response in (far, reaction, bad_parameter):
        assert set(response.json()) >= {"error", "code"}

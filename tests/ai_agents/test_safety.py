"""An agent's baseUrl is a URL a user typed: its addresses are checked when saved and at every call, and the
organization's model key never follows the agent to another server.

Names resolve from a table (never DNS); model calls go to an in-process fake, or are refused before
any connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from kaanha.models import AiAgent
from kaanha.runtime import Runtime
from kaanha.testing.fake_openai import FakeOpenAI
from tests.ai_agents.conftest import OPENAI_URL, agent_body, create_agent
from tests.conftest import API
from tests.helpers import assert_error
from tests.webhooks.delivery_support import LoopbackOnly, TableResolver

PUBLIC = "93.184.215.30"  # looks public; the fake stands in for it, nothing is sent there
LLM_URL = "https://llm.example.com/v1"


def openai_agent(**overrides: object) -> dict[str, object]:
    return agent_body(**{"provider": "openai", "model": "gpt-4o-mini", "apiKey": "sk-test-kaanha", **overrides})


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("169.254.169.254.nip.io", ["169.254.169.254"]),
        ("internal.example.com", ["10.0.0.5"]),
        ("mixed.example.com", [PUBLIC, "127.0.0.1"]),
        ("ula.example.com", ["fd00::1"]),
    ],
)
async def test_a_base_url_whose_name_resolves_to_a_private_address_is_refused(
    client, tenant, runtime, resolver, host, addresses
):
    resolver.table[host] = addresses
    url = f"https://{host}/v1"

    assert_error(
        await client.post(f"{API}/ai-agents", json=openai_agent(baseUrl=url), headers=tenant.headers),
        400,
        "unsafe_url",
    )
    created = await create_agent(client, tenant)
    changed = await client.patch(
        f"{API}/ai-agents/{created['id']}", json=openai_agent(baseUrl=url), headers=tenant.headers
    )
    assert_error(changed, 400, "unsafe_url")
    assert host in resolver.asked
    async with runtime.database.sessions() as session:
        assert list(await session.scalars(select(AiAgent.base_url))) == [None]


async def test_an_unresolvable_base_url_is_refused(client, tenant):
    body = openai_agent(baseUrl="https://nowhere.example.com/v1")

    assert_error(await client.post(f"{API}/ai-agents", json=body, headers=tenant.headers), 400, "unsafe_url")


@pytest_asyncio.fixture
async def llm(runtime: Runtime, resolver: TableResolver) -> AsyncIterator[tuple[FakeOpenAI, list[httpx.Request]]]:
    """An OpenAI-compatible fake at llm.example.com, reachable only at the address the name resolves to."""
    fake, sent = FakeOpenAI(), []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    resolver.table["llm.example.com"] = [PUBLIC]
    original = runtime.http
    runtime.http = httpx.AsyncClient(
        transport=LoopbackOnly(),
        mounts={f"https://{PUBLIC}": httpx.ASGITransport(app=fake.app)},
        event_hooks={"request": [record]},
    )
    yield fake, sent
    await runtime.http.aclose()
    runtime.http = original


async def test_every_model_call_goes_to_the_checked_address_and_a_rebinding_is_refused(
    client, tenant, runtime, resolver, llm
):
    fake, sent = llm
    created = await create_agent(client, tenant, **openai_agent(baseUrl=LLM_URL, apiKey=fake.script.api_key))
    url = f"{API}/ai-agents/{created['id']}/test"

    answered = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)
    assert answered.json()["handoff"] is False, answered.text
    (request,) = sent
    assert request.url.host == PUBLIC  # pinned: connected to the address that was checked
    assert request.headers["host"] == "llm.example.com"
    assert request.extensions["sni_hostname"] == "llm.example.com"  # TLS still verifies the name

    # The name now answers with the metadata address (DNS rebinding): the call is refused, nothing sent.
    resolver.table["llm.example.com"] = ["169.254.169.254"]
    refused = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)
    assert (refused.json()["handoff"], refused.json()["reason"]) == (True, "provider_error"), refused.text
    assert len(sent) == 1
    assert len(fake.script.requests) == 1


async def test_private_urls_allowed_call_the_url_as_it_is(client, tenant, runtime, resolver, fakes):
    runtime.settings.allow_private_urls = True
    resolver.table.clear()  # no lookup at all
    created = await create_agent(client, tenant, **openai_agent(baseUrl=OPENAI_URL, apiKey=fakes.openai.script.api_key))

    url = f"{API}/ai-agents/{created['id']}/test"

    answered = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)

    assert answered.json()["handoff"] is False, answered.text
    assert resolver.asked == []


async def stored_key(runtime: Runtime) -> str | None:
    async with runtime.database.sessions() as session:
        stored = await session.scalar(select(AiAgent.api_key_encrypted))
    return runtime.secret_box.decrypt(stored) if stored else None


async def test_a_new_base_url_needs_the_key_again(client, tenant, runtime, resolver):
    resolver.table["llm.example.com"] = [PUBLIC]
    created = await create_agent(client, tenant, **openai_agent(baseUrl=OPENAI_URL, apiKey="sk-org-secret"))
    agent_url = f"{API}/ai-agents/{created['id']}"

    moved = await client.patch(agent_url, json={"baseUrl": LLM_URL}, headers=tenant.headers)
    body = assert_error(moved, 400, "invalid_ai_agent")
    assert "apiKey" in body["error"]
    assert await stored_key(runtime) == "sk-org-secret"
    assert (await client.get(agent_url, headers=tenant.headers)).json()["baseUrl"] == OPENAI_URL

    # The default server (no baseUrl) is another server too.
    assert_error(await client.patch(agent_url, json={"baseUrl": None}, headers=tenant.headers), 400)

    renamed = await client.patch(agent_url, json={"name": "Asha 2", "baseUrl": OPENAI_URL}, headers=tenant.headers)
    assert renamed.status_code == 200, renamed.text
    assert await stored_key(runtime) == "sk-org-secret"

    rekeyed = await client.patch(agent_url, json={"baseUrl": LLM_URL, "apiKey": "sk-new"}, headers=tenant.headers)
    assert rekeyed.status_code == 200, rekeyed.text
    assert (rekeyed.json()["baseUrl"], rekeyed.json()["hasApiKey"]) == (LLM_URL, True)
    assert await stored_key(runtime) == "sk-new"

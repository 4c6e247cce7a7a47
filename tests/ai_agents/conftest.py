"""AI agent fixtures: lexical ranking by default (fast), fake model APIs mounted on the runtime's httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from kaanha.kit.ids import new_id
from kaanha.models import Membership, User
from kaanha.runtime import Runtime
from kaanha.testing.fake_anthropic import FakeAnthropic
from kaanha.testing.fake_openai import FakeOpenAI
from tests.conftest import API, Tenant
from tests.webhooks.delivery_support import LoopbackOnly, TableResolver

OPENAI_URL = "http://openai.fake/v1"
ANTHROPIC_URL = "http://anthropic.fake"
# What the fakes' names resolve to in tests: public-looking addresses, so calls to them pass the address
# checks and are pinned to them; in-process transports stand in for them, nothing is sent there.
OPENAI_ADDRESS = "93.184.215.20"
ANTHROPIC_ADDRESS = "93.184.215.21"

KNOWLEDGE = [
    {"question": "What are your opening hours?", "answer": "We are open 9 am to 6 pm, Monday to Saturday."},
    {"question": "How much does delivery cost?", "answer": "Delivery is free above ₹499, otherwise ₹40."},
    {"question": "Can I return an item?", "answer": "Yes, within 7 days of delivery, unused and in its box."},
]


@pytest.fixture(autouse=True)
def lexical_only(runtime: Runtime) -> None:
    """Semantic ranking loads a model (seconds): only the tests that are about it turn it on."""
    runtime.settings.ai_agents.semantic_ranking = False


@pytest.fixture(autouse=True)
def resolver(runtime: Runtime) -> Iterator[TableResolver]:
    """Names resolve from this table, never through DNS; a test adds the names it needs."""
    table = TableResolver({"openai.fake": [OPENAI_ADDRESS], "anthropic.fake": [ANTHROPIC_ADDRESS]})
    original, runtime.resolver = runtime.resolver, table
    yield table
    runtime.resolver = original


@dataclass
class Fakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic


@pytest_asyncio.fixture
async def fakes(runtime: Runtime) -> AsyncIterator[Fakes]:
    """Both model APIs, reached through the runtime's client as real URLs would be; nothing leaves the process.

    Calls are pinned to the address the name resolved to, so the fakes answer at their addresses too;
    anything else may only go to loopback.
    """
    openai, anthropic = FakeOpenAI(), FakeAnthropic()
    original = runtime.http
    runtime.http = httpx.AsyncClient(
        transport=LoopbackOnly(),
        mounts={
            "http://openai.fake": httpx.ASGITransport(app=openai.app),
            f"http://{OPENAI_ADDRESS}": httpx.ASGITransport(app=openai.app),
            "http://anthropic.fake": httpx.ASGITransport(app=anthropic.app),
            f"http://{ANTHROPIC_ADDRESS}": httpx.ASGITransport(app=anthropic.app),
        },
    )
    runtime.settings.ai_agents.request_timeout_seconds = 0.5
    yield Fakes(openai=openai, anthropic=anthropic)
    await runtime.http.aclose()
    runtime.http = original


def agent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Asha Bot", "knowledgeBase": KNOWLEDGE, "model": "lexical"}
    body.update(overrides)
    return body


async def create_agent(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/ai-agents", json=agent_body(**overrides), headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def add_member(runtime: Runtime, tenant: Tenant) -> str:
    user_id = new_id("usr")
    async with runtime.database.transaction() as session:
        session.add(User(id=user_id, email=f"{user_id}@example.com", name="Ravi", password_hash="not-a-real-hash"))
        await session.flush()
        session.add(Membership(id=new_id("mem"), organization_id=tenant.organization_id, user_id=user_id, role="agent"))
    return user_id

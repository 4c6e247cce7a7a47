"""The OpenAI-compatible and Anthropic providers against their fakes: answers, refusals, limits, overload, slowness."""

from __future__ import annotations

import httpx
import pytest

from kaanha.ai_agents.providers.anthropic import AnthropicProvider
from kaanha.ai_agents.providers.base import AnswerRequest, ProviderFailure, Turn
from kaanha.ai_agents.providers.openai import OpenAIProvider
from kaanha.ai_agents.retrieval import KnowledgeIndex, Passage
from kaanha.testing.fake_anthropic import FakeAnthropic
from kaanha.testing.fake_graph.server import BackgroundServer
from kaanha.testing.fake_openai import FakeOpenAI
from tests.ai_agents.conftest import ANTHROPIC_URL, OPENAI_URL, agent_body
from tests.conftest import API

PASSAGES = KnowledgeIndex(
    [
        Passage(
            id="p1",
            source="knowledge_base",
            text="Free above ₹499.",
            question="Delivery cost?",
            answer="Free above ₹499.",
        )
    ]
).search("delivery cost")


def request(question: str = "what does delivery cost?", passages=PASSAGES) -> AnswerRequest:  # type: ignore[no-untyped-def]
    return AnswerRequest(
        agent_name="Asha Bot",
        instructions="Be brief.",
        model="m-1",
        question=question,
        history=[Turn("customer", "hello"), Turn("agent", "Hi! How can I help?")],
        passages=passages,
    )


def openai(fake: FakeOpenAI, *, key: str | None = None, timeout: float = 0.5) -> OpenAIProvider:
    client = httpx.AsyncClient(mounts={"http://openai.fake": httpx.ASGITransport(app=fake.app)})
    return OpenAIProvider(
        client, base_url=OPENAI_URL, api_key=key or fake.script.api_key, timeout=timeout, connect_timeout=0.5
    )


def anthropic(fake: FakeAnthropic, *, key: str | None = None, timeout: float = 0.5) -> AnthropicProvider:
    client = httpx.AsyncClient(mounts={"http://anthropic.fake": httpx.ASGITransport(app=fake.app)})
    return AnthropicProvider(
        client, base_url=ANTHROPIC_URL, api_key=key or fake.script.api_key, timeout=timeout, connect_timeout=0.5
    )


async def test_openai_answers_from_the_passages_in_the_documented_shape():
    fake = FakeOpenAI()

    answer = await openai(fake).answer(request())

    assert answer.text == "Free above ₹499."
    (sent,) = fake.script.requests
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert "Be brief." in sent["messages"][0]["content"]
    assert sent["model"] == "m-1"


async def test_anthropic_answers_with_alternating_turns_and_a_system_prompt():
    fake = FakeAnthropic()

    answer = await anthropic(fake).answer(request())

    assert answer.text == "Free above ₹499."
    (sent,) = fake.script.requests
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert "Free above ₹499." in sent["system"]
    assert sent["max_tokens"] > 0


async def test_a_model_that_finds_nothing_hands_over():
    fake = FakeOpenAI()

    answer = await openai(fake).answer(request(passages=[]))

    assert answer.text is None


@pytest.mark.parametrize(
    ("make", "status", "retryable"),
    [
        ("openai", 429, True),
        ("openai", 500, True),
        ("openai", 503, True),
        ("anthropic", 429, True),
        ("anthropic", 500, True),
        ("anthropic", 529, True),
    ],
)
async def test_provider_errors_are_failures_worth_one_retry(make, status, retryable):
    fake = FakeOpenAI() if make == "openai" else FakeAnthropic()
    fake.script.fail_next(status, retry_after=2 if status == 429 else None)
    provider = openai(fake) if make == "openai" else anthropic(fake)  # type: ignore[arg-type]

    with pytest.raises(ProviderFailure) as failure:
        await provider.answer(request())

    assert failure.value.retryable is retryable
    assert f"HTTP {status}" in str(failure.value)
    assert failure.value.retry_after == (2.0 if status == 429 else None)


async def test_a_wrong_key_is_not_retried():
    with pytest.raises(ProviderFailure) as openai_failure:
        await openai(FakeOpenAI(), key="sk-wrong").answer(request())
    with pytest.raises(ProviderFailure) as anthropic_failure:
        await anthropic(FakeAnthropic(), key="sk-wrong").answer(request())

    assert openai_failure.value.retryable is False
    assert "Incorrect API key" in str(openai_failure.value)
    assert anthropic_failure.value.retryable is False
    assert "invalid x-api-key" in str(anthropic_failure.value)


async def test_a_slow_model_times_out():
    fake = FakeAnthropic()
    fake.script.delay_next(2.0)

    with pytest.raises(ProviderFailure) as failure:
        await anthropic(fake, timeout=0.2).answer(request())

    assert failure.value.retryable is True
    assert "no answer within" in str(failure.value)


async def test_over_real_http_on_loopback():
    fake = FakeOpenAI()
    with BackgroundServer(fake.app) as server:
        async with httpx.AsyncClient() as client:
            provider = OpenAIProvider(
                client, base_url=f"{server.url}/v1", api_key=fake.script.api_key, timeout=5, connect_timeout=1
            )
            assert (await provider.answer(request())).text == "Free above ₹499."
            fake.script.delay_next(1.0)
            slow = OpenAIProvider(
                client, base_url=f"{server.url}/v1", api_key=fake.script.api_key, timeout=0.2, connect_timeout=1
            )
            with pytest.raises(ProviderFailure):
                await slow.answer(request())


async def test_the_test_endpoint_retries_once_and_then_hands_over(client, tenant, fakes):
    body = agent_body(
        provider="anthropic", model="claude-x", apiKey=fakes.anthropic.script.api_key, baseUrl=ANTHROPIC_URL
    )
    created = (await client.post(f"{API}/ai-agents", json=body, headers=tenant.headers)).json()
    url = f"{API}/ai-agents/{created['id']}/test"

    fakes.anthropic.script.fail_next(529)
    recovered = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)
    assert recovered.json()["handoff"] is False, recovered.text
    assert recovered.json()["reply"] == "Delivery is free above ₹499, otherwise ₹40."

    fakes.anthropic.script.delay_next(2.0, times=2)
    slow = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)
    assert (slow.json()["handoff"], slow.json()["reason"]) == (True, "provider_error")

    fakes.anthropic.script.fail_next(429, retry_after=60)  # longer than we wait: hand over at once
    limited = await client.post(url, json={"question": "How much does delivery cost?"}, headers=tenant.headers)
    assert limited.json()["reason"] == "provider_error"
    assert len(fakes.anthropic.script.requests) == 2 + 2 + 1


def openai_at(fake: FakeOpenAI, base_url: str) -> OpenAIProvider:
    origin = str(httpx.URL(base_url).copy_with(path="/"))[:-1]
    client = httpx.AsyncClient(mounts={origin: httpx.ASGITransport(app=fake.app)})
    return OpenAIProvider(client, base_url=base_url, api_key=fake.script.api_key, timeout=0.5, connect_timeout=0.5)


async def test_openai_itself_gets_max_completion_tokens_which_its_reasoning_models_require():
    fake = FakeOpenAI()
    reasoning = AnswerRequest(
        agent_name="Asha Bot", instructions="", model="gpt-5-mini", question="delivery cost?", passages=PASSAGES
    )

    answer = await openai_at(fake, "https://api.openai.com/v1").answer(reasoning)

    assert answer.text == "Free above ₹499."
    (sent,) = fake.script.requests
    assert "max_tokens" not in sent
    assert sent["max_completion_tokens"] >= 400


async def test_other_compatible_servers_get_max_tokens_which_they_all_accept():
    fake = FakeOpenAI()

    await openai_at(fake, "http://llm.example.com:8000/v1").answer(request())

    (sent,) = fake.script.requests
    assert "max_completion_tokens" not in sent
    assert sent["max_tokens"] == 400


async def test_the_fake_refuses_max_tokens_for_reasoning_models_as_openai_does():
    fake = FakeOpenAI()
    client = httpx.AsyncClient(mounts={"http://openai.fake": httpx.ASGITransport(app=fake.app)})
    body = {"model": "o3-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}

    refused = await client.post(
        f"{OPENAI_URL}/chat/completions", json=body, headers={"Authorization": f"Bearer {fake.script.api_key}"}
    )

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_parameter"
    assert refused.json()["error"]["param"] == "max_tokens"
    reasoning = AnswerRequest(agent_name="A", instructions="", model="o3", question="q")
    with pytest.raises(ProviderFailure) as failure:  # and the provider hands over at once: no retry
        await openai_at(fake, OPENAI_URL).answer(reasoning)
    assert failure.value.retryable is False
    assert "max_completion_tokens" in str(failure.value)


async def test_a_reasoning_model_that_spent_its_limit_thinking_is_a_failure_not_a_refusal():
    def answer(_request: httpx.Request) -> httpx.Response:
        choice = {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "length"}
        return httpx.Response(200, json={"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = OpenAIProvider(client, base_url="https://api.openai.com/v1", api_key="k", timeout=1, connect_timeout=1)

    with pytest.raises(ProviderFailure) as failure:
        await provider.answer(request())
    assert "token limit" in str(failure.value)

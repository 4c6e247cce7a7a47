"""Handoffs where people work, a job that fails for good, an assignment racing a reply, Meta's duplicates,
and the agent's slow work kept out of transactions."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from kaanha.ai_agents import tasks
from kaanha.ai_agents.retrieval import KnowledgeIndex
from kaanha.conversations import service as conversation_service
from kaanha.kit.clock import clock
from kaanha.models import AiAgentRun, Job
from kaanha.worker.runner import drain
from tests.ai_agents.conftest import KNOWLEDGE, add_member, create_agent
from tests.ai_agents.test_replies import agent_replies, runs
from tests.conftest import API
from tests.consent.support import meta_message, webhook
from tests.helpers import inbound


async def chat(client, tenant, conversation_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.get(f"{API}/chats/{conversation_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def listed(client, tenant, conversation_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.get(f"{API}/chats", headers=tenant.headers)
    assert response.status_code == 200, response.text
    (found,) = [item for item in response.json()["data"] if item["id"] == conversation_id]
    return found  # type: ignore[no-any-return]


async def test_a_handoff_shows_on_the_conversation_until_a_person_takes_it(client, tenant, runtime):
    agent = await create_agent(client, tenant)
    message = await inbound(client, tenant, text="I want to speak to a human please")
    conversation_id = message["conversationId"]
    assert (await chat(client, tenant, conversation_id))["handoff"] is None
    await drain(runtime)

    handoff = (await chat(client, tenant, conversation_id))["handoff"]
    assert handoff is not None
    assert (handoff["agentId"], handoff["agentName"], handoff["reason"]) == (agent["id"], "Asha Bot", "keyword")
    assert "human" in handoff["note"]
    assert handoff["at"].endswith("Z")
    assert (await listed(client, tenant, conversation_id))["handoff"] == handoff

    person = await add_member(runtime, tenant)
    url = f"{API}/chats/{conversation_id}"
    assigned = await client.patch(url, json={"assigneeId": person}, headers=tenant.headers)
    assert assigned.json()["handoff"] is None
    await client.patch(url, json={"assigneeId": None}, headers=tenant.headers)
    assert (await chat(client, tenant, conversation_id))["handoff"] is None  # a person has seen to it
    assert (await listed(client, tenant, conversation_id))["handoff"] is None


async def test_resolving_a_handed_over_conversation_clears_its_handoff(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="Do you repair bicycles?")
    await drain(runtime)
    url = f"{API}/chats/{message['conversationId']}"
    assert (await chat(client, tenant, message["conversationId"]))["handoff"]["reason"] == "low_confidence"

    resolved = await client.patch(url, json={"status": "RESOLVED"}, headers=tenant.headers)
    assert resolved.json()["handoff"] is None
    await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)

    assert (await chat(client, tenant, message["conversationId"]))["handoff"] is None
    assert (await agent_replies(client, tenant, message["conversationId"]))[-1] == KNOWLEDGE[1]["answer"]


async def test_a_reply_job_that_fails_for_good_still_hands_over_with_the_message(
    client, tenant, runtime, monkeypatch, frozen_clock
):
    agent = await create_agent(client, tenant)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(tasks, "decide", broken)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    for _ in range(4):  # three attempts with their backoff, then the handoff message's send
        await drain(runtime)
        clock.advance(timedelta(minutes=5))

    assert await agent_replies(client, tenant, message["conversationId"]) == [agent["handoff"]["message"]]
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "provider_error")
    assert "a bug of ours" in (run.handoff_note or "")
    assert (await chat(client, tenant, message["conversationId"]))["handoff"]["reason"] == "provider_error"


async def test_a_job_that_fails_for_good_after_the_window_closed_hands_over_in_silence(
    client, tenant, runtime, monkeypatch, frozen_clock
):
    await create_agent(client, tenant)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(tasks, "decide", broken)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    for _ in range(4):
        await drain(runtime)
        clock.advance(timedelta(hours=13))  # the third attempt comes after the window closed

    assert await agent_replies(client, tenant, message["conversationId"]) == []
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "provider_error")


async def test_a_person_assigned_while_the_agent_thinks_gets_the_conversation_without_a_reply(
    client, tenant, runtime, monkeypatch
):
    """The assignment changes the conversation, then stops the run; the agent's answer lands in between.

    Without a lock on the conversation first (PostgreSQL), the agent claimed its run and read the
    conversation as it was before the assignment committed: it went on to reply to a conversation a
    person had just taken, or (locking run then conversation, against the assignment's conversation
    then run) deadlocked with the assignment. Now one waits for the other, and the agent stands down.
    """
    await create_agent(client, tenant)
    person = await add_member(runtime, tenant)
    thinking, answered = asyncio.Event(), asyncio.Event()
    decide, changed = tasks.decide, conversation_service.on_conversation_changed

    async def slow_decide(*args: Any, **kwargs: Any) -> Any:
        thinking.set()
        await answered.wait()
        return await decide(*args, **kwargs)

    monkeypatch.setattr(tasks, "decide", slow_decide)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    job = asyncio.create_task(drain(runtime))
    await asyncio.wait_for(thinking.wait(), timeout=10)

    async def assign_slowly(session: Any, conversation: Any) -> None:
        # The conversation is assigned (not yet committed): the agent finishes thinking and acts now.
        answered.set()
        await asyncio.wait({job}, timeout=1.0)
        await changed(session, conversation)

    monkeypatch.setattr(conversation_service, "on_conversation_changed", assign_slowly)
    assigned = await client.patch(
        f"{API}/chats/{message['conversationId']}", json={"assigneeId": person}, headers=tenant.headers
    )
    assert assigned.status_code == 200, assigned.text
    await asyncio.wait_for(job, timeout=30)

    assert await agent_replies(client, tenant, message["conversationId"]) == []
    (run,) = await runs(runtime)
    assert (run.status, run.stop_reason, run.bot_replies) == ("stopped", "assigned", 0)
    async with runtime.database.sessions() as session:
        (reply_job,) = await session.scalars(select(Job).where(Job.kind == "ai_agents.reply"))
    assert (reply_job.status, reply_job.attempts, reply_job.last_error) == ("done", 1, None)


async def test_the_same_whatsapp_message_delivered_twice_gets_one_reply(client, tenant, runtime):
    await create_agent(client, tenant)
    message = meta_message("text", {"body": "Can I return an item?"})

    first = await webhook(runtime, tenant, message)
    await webhook(runtime, tenant, message)  # Meta's retry before the agent answered
    await drain(runtime)
    await webhook(runtime, tenant, message)  # and after
    await drain(runtime)

    data = (await client.get(f"{API}/messages?limit=100", headers=tenant.headers)).json()["data"]
    assert [m["direction"] for m in data].count("inbound") == 1
    assert [m["content"]["text"] for m in data if m["aiAgentId"]] == [KNOWLEDGE[2]["answer"]]
    async with runtime.database.sessions() as session:
        assert len(list(await session.scalars(select(AiAgentRun)))) == 1
    assert first is not None


async def test_the_knowledge_index_is_built_outside_any_transaction_and_off_the_event_loop(
    client, tenant, runtime, monkeypatch
):
    await create_agent(client, tenant)
    in_transaction = contextvars.ContextVar("in_transaction", default=False)
    transaction = runtime.database.transaction

    @contextlib.asynccontextmanager
    async def watched_transaction() -> AsyncIterator[Any]:
        token = in_transaction.set(True)
        try:
            async with transaction() as session:
                yield session
        finally:
            in_transaction.reset(token)

    loop_thread = threading.get_ident()
    builds: list[tuple[bool, bool]] = []
    build = KnowledgeIndex.__post_init__

    def watched_build(index: KnowledgeIndex) -> None:
        builds.append((in_transaction.get(), threading.get_ident() == loop_thread))
        build(index)

    monkeypatch.setattr(runtime.database, "transaction", watched_transaction)
    monkeypatch.setattr(KnowledgeIndex, "__post_init__", watched_build)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [KNOWLEDGE[1]["answer"]]
    assert builds == [(False, False)]  # (inside a transaction, on the event loop's thread)

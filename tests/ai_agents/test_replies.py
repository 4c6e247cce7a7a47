"""End to end: a customer writes to the sandbox number, the worker runs the agent, it replies or hands over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from kaanha.events import types as event_types
from kaanha.kit.clock import clock
from kaanha.models import AiAgentRun, Event, Organization
from kaanha.worker.runner import drain
from tests.ai_agents.conftest import KNOWLEDGE, OPENAI_URL, add_member, create_agent
from tests.conftest import API, Tenant
from tests.helpers import PHONE, inbound


async def conversation_messages(
    client: httpx.AsyncClient, tenant: Tenant, conversation_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/messages?conversationId={conversation_id}&limit=100", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["data"]))  # oldest first


async def agent_replies(client, tenant, conversation_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        m["content"]["text"]
        for m in await conversation_messages(client, tenant, conversation_id)
        if m["direction"] == "outbound" and m["aiAgentId"]
    ]


async def runs(runtime) -> list[AiAgentRun]:  # type: ignore[no-untyped-def]
    async with runtime.database.sessions() as session:
        return list(await session.scalars(select(AiAgentRun).order_by(AiAgentRun.started_at)))


async def handoff_events(runtime) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with runtime.database.sessions() as session:
        found = await session.scalars(select(Event).where(Event.type == event_types.CONVERSATION_HANDED_OFF))
        return [event.data for event in found]


async def test_the_agent_answers_a_customer_and_its_message_is_marked_as_its_own(client, tenant, runtime):
    agent = await create_agent(client, tenant)
    message = await inbound(client, tenant, text="How much does delivery cost?")

    await drain(runtime)

    thread = await conversation_messages(client, tenant, message["conversationId"])
    assert [(m["direction"], m["aiAgentId"]) for m in thread] == [("inbound", None), ("outbound", agent["id"])]
    assert thread[1]["content"]["text"] == KNOWLEDGE[1]["answer"]
    assert thread[1]["status"] in ("sent", "delivered", "read")  # it really went out through the provider
    chat = (await client.get(f"{API}/chats/{message['conversationId']}", headers=tenant.headers)).json()
    assert (chat["status"], chat["assigneeId"]) == ("OPEN", None)
    (run,) = await runs(runtime)
    assert (run.status, run.bot_replies, run.agent_id) == ("active", 1, agent["id"])


async def test_a_duplicate_webhook_or_job_never_makes_a_second_reply(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="Can I return an item?")
    await drain(runtime)

    # The same job again (a worker that lost its lease), and the same WhatsApp message again (Meta's retry).
    async with runtime.database.transaction() as session:
        from kaanha.worker.queue import enqueue

        (run,) = await runs(runtime)
        enqueue(
            session,
            kind="ai_agents.reply",
            payload={"runId": run.id, "messageId": message["id"]},
            organization_id=tenant.organization_id,
        )
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [KNOWLEDGE[2]["answer"]]


async def test_a_handoff_word_hands_over_politely_with_a_note_and_the_agent_stops(client, tenant, runtime):
    agent = await create_agent(client, tenant)
    message = await inbound(client, tenant, text="I want to speak to a human please")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [agent["handoff"]["message"]]
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "keyword")
    assert "human" in (run.handoff_note or "")
    (event,) = await handoff_events(runtime)
    assert event["conversationId"] == message["conversationId"]
    assert event["reason"] == "keyword"
    assert event["agentId"] == agent["id"]
    chat = (await client.get(f"{API}/chats/{message['conversationId']}", headers=tenant.headers)).json()
    assert chat["status"] == "OPEN"

    await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)
    assert await agent_replies(client, tenant, message["conversationId"]) == [agent["handoff"]["message"]]

    listed = await client.get(f"{API}/ai-agents/{agent['id']}/conversations", headers=tenant.headers)
    assert listed.json()["data"][0]["handoffReason"] == "keyword"


async def test_a_question_it_cannot_answer_hands_over_for_low_confidence(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="Do you repair bicycles?")
    await drain(runtime)

    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "low_confidence")
    assert "confidence" in (run.handoff_note or "")
    assert len(await agent_replies(client, tenant, message["conversationId"])) == 1


async def test_after_max_bot_replies_in_a_row_it_hands_over(client, tenant, runtime):
    agent = await create_agent(client, tenant, handoff={"maxBotReplies": 2})
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)
    await inbound(client, tenant, text="Can I return an item?")
    await drain(runtime)
    await inbound(client, tenant, text="What are your opening hours?")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [
        KNOWLEDGE[1]["answer"],
        KNOWLEDGE[2]["answer"],
        agent["handoff"]["message"],
    ]
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason, run.bot_replies) == ("stopped", "max_replies", 2)


async def test_a_failing_model_is_retried_once_then_the_conversation_is_handed_over(client, tenant, runtime, fakes):
    agent = await create_agent(
        client, tenant, provider="openai", model="gpt-4o-mini", apiKey=fakes.openai.script.api_key, baseUrl=OPENAI_URL
    )
    fakes.openai.script.fail_next(500, times=2)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)

    assert len(fakes.openai.script.requests) == 2
    assert await agent_replies(client, tenant, message["conversationId"]) == [agent["handoff"]["message"]]
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "provider_error")
    assert "HTTP 500" in (run.handoff_note or "")


async def test_an_llm_agent_replies_with_the_models_answer_from_the_passages(client, tenant, runtime, fakes):
    agent = await create_agent(
        client, tenant, provider="openai", model="gpt-4o-mini", apiKey=fakes.openai.script.api_key, baseUrl=OPENAI_URL
    )
    fakes.openai.script.fail_next(429, retry_after=0)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [KNOWLEDGE[1]["answer"]]
    request = fakes.openai.script.requests[-1]
    assert request["model"] == "gpt-4o-mini"
    assert "Delivery is free above" in request["messages"][0]["content"]
    assert request["messages"][-1] == {"role": "user", "content": "How much does delivery cost?"}
    assert agent["id"]


async def test_assigning_a_person_stops_the_agent_until_the_conversation_is_resolved(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)
    person = await add_member(runtime, tenant)
    chat = f"{API}/chats/{message['conversationId']}"

    assert (await client.patch(chat, json={"assigneeId": person}, headers=tenant.headers)).status_code == 200
    await inbound(client, tenant, text="Can I return an item?")
    await drain(runtime)
    # Unassigned but not resolved: people still have it.
    assert (await client.patch(chat, json={"assigneeId": None}, headers=tenant.headers)).status_code == 200
    await inbound(client, tenant, text="Can I return an item?")
    await drain(runtime)
    assert await agent_replies(client, tenant, message["conversationId"]) == [KNOWLEDGE[1]["answer"]]

    assert (await client.patch(chat, json={"status": "RESOLVED"}, headers=tenant.headers)).status_code == 200
    await inbound(client, tenant, text="What are your opening hours?")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == [
        KNOWLEDGE[1]["answer"],
        KNOWLEDGE[0]["answer"],
    ]
    first, second = await runs(runtime)
    assert (first.status, first.stop_reason) == ("ended", "assigned")
    assert second.status == "active"


async def test_a_job_that_runs_after_a_person_replied_stands_down(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    sent = await client.post(
        f"{API}/send", json={"to": PHONE, "type": "text", "text": "On it!"}, headers=tenant.headers
    )
    assert sent.status_code == 201, sent.text

    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == []


async def test_serving_rules_by_contact_tag(client, tenant, runtime):
    await create_agent(client, tenant, serves={"tags": ["vip"]})
    first = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)
    assert await agent_replies(client, tenant, first["conversationId"]) == []

    tagged = await client.patch(f"{API}/contacts/{first['contactId']}", json={"tags": ["vip"]}, headers=tenant.headers)
    assert tagged.status_code == 200, tagged.text
    await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)
    assert await agent_replies(client, tenant, first["conversationId"]) == [KNOWLEDGE[1]["answer"]]


async def test_serving_only_outside_business_hours_in_the_organizations_time_zone(client, tenant, runtime):
    async with runtime.database.transaction() as session:
        organization = await session.get(Organization, tenant.organization_id)
        assert organization is not None
        organization.timezone = "Asia/Kolkata"
    hours = [{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "18:00"}]
    await create_agent(client, tenant, serves={"onlyOutsideBusinessHours": True, "businessHours": hours})
    try:
        # Tuesday 2026-11-24 10:00 UTC is 15:30 in Kolkata: open, so people answer.
        clock.freeze(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
        first = await inbound(client, tenant, text="How much does delivery cost?")
        await drain(runtime)
        assert await agent_replies(client, tenant, first["conversationId"]) == []

        # 13:00 UTC is 18:30 in Kolkata: closed, the agent answers.
        clock.advance(timedelta(hours=3))
        await inbound(client, tenant, text="How much does delivery cost?")
        await drain(runtime)
        assert await agent_replies(client, tenant, first["conversationId"]) == [KNOWLEDGE[1]["answer"]]

        # The next morning at 09:30 in Kolkata the agent steps back for people.
        clock.advance(timedelta(hours=15))
        await inbound(client, tenant, text="Can I return an item?")
        await drain(runtime)
        assert len(await agent_replies(client, tenant, first["conversationId"])) == 1
        assert [run.stop_reason for run in await runs(runtime)] == ["not_serving"]
    finally:
        clock.unfreeze()


async def test_a_disabled_agent_or_an_assigned_conversation_gets_no_reply(client, tenant, runtime):
    await create_agent(client, tenant, enabled=False)
    message = await inbound(client, tenant, text="How much does delivery cost?")
    await drain(runtime)

    assert await agent_replies(client, tenant, message["conversationId"]) == []
    assert await runs(runtime) == []


async def test_media_it_cannot_read_is_handed_over_and_reactions_are_ignored(client, tenant, runtime):
    await create_agent(client, tenant)
    message = await inbound(client, tenant, text="Hello")
    await drain(runtime)
    reaction = await client.post(
        f"{API}/sandbox/inbound",
        json={"from": PHONE, "type": "reaction", "messageId": message["id"], "emoji": "👍"},
        headers=tenant.headers,
    )
    assert reaction.status_code == 201, reaction.text
    await drain(runtime)
    (run,) = await runs(runtime)
    assert run.status == "active"

    location = await client.post(
        f"{API}/sandbox/inbound",
        json={"from": PHONE, "type": "location", "latitude": 12.97, "longitude": 77.59},
        headers=tenant.headers,
    )
    assert location.status_code == 201, location.text
    await drain(runtime)
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "unsupported_message")


async def test_the_agent_never_starts_a_conversation_outside_the_window(client, tenant, runtime):
    await create_agent(client, tenant)
    try:
        clock.freeze(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
        message = await inbound(client, tenant, text="How much does delivery cost?")
        clock.advance(timedelta(hours=25))  # the job ran a day late (a worker outage)
        await drain(runtime)
    finally:
        clock.unfreeze()

    assert await agent_replies(client, tenant, message["conversationId"]) == []
    (run,) = await runs(runtime)
    assert (run.status, run.handoff_reason) == ("stopped", "window_closed")

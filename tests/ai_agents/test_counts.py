"""Per-agent counts for analytics: conversations handled, replies sent, handoffs by reason, within a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kaanha.ai_agents.service import agent_counts
from kaanha.kit.clock import clock
from kaanha.worker.runner import drain
from tests.ai_agents.conftest import create_agent
from tests.conftest import API, make_tenant
from tests.helpers import inbound


async def test_counts_per_agent_in_a_period(client, tenant, runtime):
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    helper = await create_agent(client, tenant, name="Helper")
    idle = await create_agent(client, tenant, name="Idle", serves={"tags": ["nobody"]})
    other = await make_tenant(runtime, "Other")
    await create_agent(client, other, name="Theirs")
    try:
        clock.freeze(start)
        await inbound(client, tenant, phone="+919800000001", text="How much does delivery cost?")
        await inbound(client, tenant, phone="+919800000002", text="What are your opening hours?")
        await inbound(client, other, phone="+919800000002", text="What are your opening hours?")
        await drain(runtime)
        await inbound(client, tenant, phone="+919800000001", text="Can I return an item?")
        await inbound(client, tenant, phone="+919800000002", text="I want a human")
        await inbound(client, tenant, phone="+919800000003", text="Do you sell kites?")
        await drain(runtime)
        clock.advance(timedelta(days=2))
        await inbound(client, tenant, phone="+919800000004", text="How much does delivery cost?")
        await drain(runtime)
    finally:
        clock.unfreeze()

    async with runtime.database.sessions() as session:
        counts = await agent_counts(
            session, organization_id=tenant.organization_id, start=start, end=start + timedelta(days=1)
        )
        later = await agent_counts(
            session,
            organization_id=tenant.organization_id,
            start=start + timedelta(days=1),
            end=start + timedelta(days=3),
        )

    by_name = {count.name: count for count in counts}
    assert set(by_name) == {"Helper", "Idle"}
    assert by_name["Helper"].agent_id == helper["id"]
    assert by_name["Helper"].conversations_handled == 3
    assert by_name["Helper"].replies_sent == 5  # 3 answers and 2 handoff messages
    assert by_name["Helper"].handoffs == 2
    assert by_name["Helper"].handoffs_by_reason == {"keyword": 1, "low_confidence": 1}
    assert (by_name["Idle"].agent_id, by_name["Idle"].conversations_handled, by_name["Idle"].replies_sent) == (
        idle["id"],
        0,
        0,
    )
    helper_later = next(count for count in later if count.name == "Helper")
    assert (helper_later.conversations_handled, helper_later.replies_sent, helper_later.handoffs) == (1, 1, 0)


async def test_the_analytics_report_shows_agents_and_keeps_response_times_for_people(client, tenant, runtime):
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await create_agent(client, tenant, name="Helper")
    try:
        clock.freeze(start)
        await inbound(client, tenant, phone="+919800000001", text="How much does delivery cost?")
        await inbound(client, tenant, phone="+919800000002", text="I want a human")
        await drain(runtime)
        clock.advance(timedelta(minutes=5))
        # A person answers the customer the agent handed over: theirs is the first response, 5 minutes in.
        answered = await client.post(
            f"{API}/send",
            json={"to": "+919800000002", "type": "text", "text": "Hi, Ravi here. How can I help?"},
            headers=tenant.headers,
        )
        assert answered.status_code == 201, answered.text
        report = await client.get(
            f"{API}/analytics", params={"from": "2026-11-24", "to": "2026-11-24"}, headers=tenant.headers
        )
    finally:
        clock.unfreeze()

    assert report.status_code == 200, report.text
    body = report.json()
    (helper,) = body["aiAgents"]
    assert helper["name"] == "Helper"
    assert helper["conversationsHandled"] == 2
    assert helper["repliesSent"] == 2  # the answer and the handoff message
    assert helper["handoffsByReason"] == {"keyword": 1}
    # The agent's instant replies don't count as first responses: only the person's, after 300 s.
    assert body["firstResponseSeconds"] == {"median": 300, "p90": 300}

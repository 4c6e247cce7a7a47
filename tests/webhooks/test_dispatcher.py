"""The dispatcher: retries on the schedule, isolation from a dead endpoint, redelivery, auto-disable.

Receivers are real HTTP servers on 127.0.0.1 (or a loopback port that never answers); nothing else
is ever contacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from kaanha.events import types
from kaanha.events.service import emit
from kaanha.kit.clock import clock, now
from kaanha.models import Event, WebhookDelivery
from kaanha.runtime import Runtime
from kaanha.testing.fake_graph import BackgroundServer
from kaanha.testing.webhook_receiver import WebhookReceiver
from kaanha.webhooks.dispatcher import WebhookDispatcher, _claim
from kaanha.webhooks.schedule import JITTER, MAX_ATTEMPTS, RETRY_DELAYS
from kaanha.webhooks.schemas import endpoint_out
from tests.webhooks.delivery_support import (
    add_endpoint,
    attempts,
    closed_port_url,
    deliveries,
    delivery_row,
    emit_event,
    endpoint_row,
    loopback_only,
    never_answering_server,
    update_endpoint,
)


@pytest_asyncio.fixture
async def receiver(runtime: Runtime) -> AsyncIterator[tuple[WebhookReceiver, str]]:
    """A real receiver on loopback (and the runtime allowed to call it): (receiver, base URL)."""
    runtime.settings.allow_private_urls = True
    keeper = WebhookReceiver(hang_seconds=60)
    async with BackgroundServer(keeper.app) as server, loopback_only(runtime):
        yield keeper, server.url


async def test_a_delivery_succeeds_and_its_attempt_is_logged(runtime, tenant, receiver):
    keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/in")
    event_id = await emit_event(runtime, tenant.organization_id)

    assert await WebhookDispatcher(runtime).run_once() == 1
    assert await WebhookDispatcher(runtime).run_once() == 0

    [delivery] = await deliveries(runtime, endpoint_id)
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1
    assert delivery.finished_at is not None
    assert delivery.locked_by is None
    [attempt] = await attempts(runtime, delivery.id)
    assert (attempt.attempt, attempt.succeeded, attempt.status_code, attempt.trigger) == (1, True, 200, "schedule")
    assert attempt.response_excerpt == "ok"
    assert attempt.error is None
    assert attempt.duration_ms is not None
    assert attempt.event_id == event_id
    assert [event["id"] for event in keeper.events()] == [event_id]


async def test_failures_are_retried_on_the_schedule_until_the_delivery_fails(runtime, tenant, receiver, frozen_clock):
    keeper, base = receiver
    runtime.settings.webhooks.disable_after_days = 30  # this test is about the delivery, not the endpoint
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/status/503")
    await emit_event(runtime, tenant.organization_id)
    [delivery] = await deliveries(runtime, endpoint_id)
    dispatcher = WebhookDispatcher(runtime)

    for attempt_number in range(1, MAX_ATTEMPTS + 1):
        if attempt_number == 5:  # one attempt meets no server at all
            await update_endpoint(runtime, endpoint_id, url=closed_port_url())
        if attempt_number == 6:
            await update_endpoint(runtime, endpoint_id, url=f"{base}/status/503")
        attempted_at = now()
        assert await dispatcher.run_once() == 1
        delivery = await delivery_row(runtime, delivery.id)
        assert delivery.attempts == attempt_number
        if attempt_number == MAX_ATTEMPTS:
            break
        assert delivery.status == "pending"
        assert delivery.next_attempt_at is not None
        wait = delivery.next_attempt_at - attempted_at
        step = RETRY_DELAYS[attempt_number - 1]
        assert step * (1 - JITTER) <= wait <= step * (1 + JITTER)
        # Not a moment early: just before it is due, nothing is claimed.
        clock.freeze(delivery.next_attempt_at - timedelta(seconds=1))
        assert await dispatcher.run_once() == 0
        clock.freeze(delivery.next_attempt_at)

    assert delivery.status == "failed"
    assert delivery.next_attempt_at is None
    assert delivery.finished_at is not None
    clock.advance(timedelta(days=30))
    assert await dispatcher.run_once() == 0

    log = await attempts(runtime, delivery.id)
    assert [attempt.attempt for attempt in log] == list(range(1, MAX_ATTEMPTS + 1))
    assert all(not attempt.succeeded and attempt.trigger == "schedule" for attempt in log)
    assert all(attempt.duration_ms is not None for attempt in log)
    refused = log[4]
    assert (refused.status_code, refused.error, refused.response_excerpt) == (None, "connection refused", None)
    answered = [attempt for attempt in log if attempt is not refused]
    assert all(attempt.status_code == 503 for attempt in answered)
    assert all(attempt.response_excerpt == "answered 503" for attempt in answered)
    assert len(keeper.received) == MAX_ATTEMPTS - 1


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(runtime, tenant, receiver):
    keeper, base = receiver
    settings = runtime.settings.webhooks
    settings.timeout_seconds = 30  # the hanging attempts stay in flight for the whole test
    settings.per_endpoint_concurrency = 4
    with never_answering_server() as dead_url:
        dead_id, _ = await add_endpoint(runtime, tenant.organization_id, dead_url, events=[types.CONTACT_CREATED])
        healthy_id, _ = await add_endpoint(
            runtime, tenant.organization_id, f"{base}/in", events=[types.CONTACT_UPDATED]
        )
        # The dead endpoint's backlog is older, so it comes first in due order.
        for _ in range(20):
            await emit_event(runtime, tenant.organization_id, type=types.CONTACT_CREATED)
        for _ in range(20):
            await emit_event(runtime, tenant.organization_id, type=types.CONTACT_UPDATED)

        # Five slots in all: the dead endpoint may hold four of them, never the fifth.
        dispatcher = WebhookDispatcher(runtime, concurrency=5, poll_interval=0.05)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run_forever(stop))
        try:
            await _until(lambda: _all_succeeded(runtime, healthy_id, 20))
            dead = await deliveries(runtime, dead_id)
            in_flight = [delivery for delivery in dead if delivery.status == "delivering"]
            assert len(in_flight) == 4
            for delivery in dead:
                assert await attempts(runtime, delivery.id) == []  # none has ended: they are still hanging
        finally:
            stop.set()
            await running

    assert len(keeper.events(types.CONTACT_UPDATED)) == 20
    # Stopping handed the unfinished attempts back at once, for another process to take.
    dead = await deliveries(runtime, dead_id)
    assert {delivery.status for delivery in dead} == {"pending"}
    assert all(delivery.locked_by is None for delivery in dead)


async def test_a_hanging_endpoints_long_backlog_does_not_hold_back_a_healthy_endpoint(runtime, tenant, receiver):
    _keeper, base = receiver
    settings = runtime.settings.webhooks
    settings.timeout_seconds = 30  # the hanging attempts stay in flight for the whole test
    settings.per_endpoint_concurrency = 4
    backlog = 300  # more than one claim looks at: the oldest due rows are all the hanging endpoint's
    with never_answering_server() as dead_url:
        await add_endpoint(runtime, tenant.organization_id, dead_url, events=[types.CONTACT_CREATED])
        healthy_id, _ = await add_endpoint(
            runtime, tenant.organization_id, f"{base}/in", events=[types.CONTACT_UPDATED]
        )
        async with runtime.database.transaction() as session:
            for _ in range(backlog):
                await emit(session, organization_id=tenant.organization_id, type=types.CONTACT_CREATED, data={})
        for _ in range(20):
            await emit_event(runtime, tenant.organization_id, type=types.CONTACT_UPDATED)

        # No polling to fall back on: only claiming again at once gets the healthy endpoint its turn.
        dispatcher = WebhookDispatcher(runtime, concurrency=10, poll_interval=3600)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run_forever(stop))
        try:
            await _until(lambda: _all_succeeded(runtime, healthy_id, 20), limit=20)
        finally:
            stop.set()
            await running


async def test_at_most_the_per_endpoint_cap_is_claimed_for_one_endpoint(runtime, tenant, frozen_clock):
    runtime.settings.webhooks.per_endpoint_concurrency = 4
    busy_id, _ = await add_endpoint(
        runtime, tenant.organization_id, "https://busy.example.com/", events=["contact.created"]
    )
    quiet_id, _ = await add_endpoint(
        runtime, tenant.organization_id, "https://quiet.example.com/", events=["contact.updated"]
    )
    for _ in range(10):
        await emit_event(runtime, tenant.organization_id, type=types.CONTACT_CREATED)
    for _ in range(3):
        await emit_event(runtime, tenant.organization_id, type=types.CONTACT_UPDATED)
    lease = timedelta(seconds=60)

    async with runtime.database.transaction() as session:
        first = await _claim(session, dispatcher_id="one", limit=64, per_endpoint=4, lease=lease)
    async with runtime.database.transaction() as session:
        second = await _claim(session, dispatcher_id="two", limit=64, per_endpoint=4, lease=lease)

    assert sorted(work.delivery.endpoint_id for work in first) == sorted([busy_id] * 4 + [quiet_id] * 3)
    assert second == []  # the busy endpoint is at its cap, counted from the first dispatcher's leases
    assert all(work.event is not None and work.endpoint is not None for work in first)

    # A lease that ran out frees its place (and its delivery is due again).
    clock.advance(lease + timedelta(seconds=1))
    async with runtime.database.transaction() as session:
        third = await _claim(session, dispatcher_id="three", limit=64, per_endpoint=4, lease=lease)
    assert sorted(work.delivery.endpoint_id for work in third) == sorted([busy_id] * 4 + [quiet_id] * 3)
    assert sum(work.delivery.id in {old.delivery.id for old in first} for work in third) == 7


async def test_a_delivery_leased_by_a_dead_dispatcher_is_delivered_once_by_the_next(
    runtime, tenant, receiver, frozen_clock
):
    keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/in")
    event_id = await emit_event(runtime, tenant.organization_id)
    async with runtime.database.transaction() as session:  # claimed, then its process died
        [claimed] = await _claim(session, dispatcher_id="dead", limit=10, per_endpoint=4, lease=timedelta(seconds=60))

    survivor = WebhookDispatcher(runtime)
    assert await survivor.run_once() == 0  # its lease is still running
    assert keeper.received == []

    clock.advance(timedelta(seconds=61))
    assert await survivor.run_once() == 1
    assert await survivor.run_once() == 0
    clock.advance(timedelta(days=4))
    assert await WebhookDispatcher(runtime).run_once() == 0

    assert [event["id"] for event in keeper.events()] == [event_id]
    delivery = await delivery_row(runtime, claimed.delivery.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert len(await attempts(runtime, delivery.id)) == 1
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is None


async def test_an_attempt_whose_lease_was_taken_is_logged_but_does_not_move_the_delivery(runtime, tenant, receiver):
    _keeper, base = receiver
    await add_endpoint(runtime, tenant.organization_id, f"{base}/status/500")
    await emit_event(runtime, tenant.organization_id)
    dispatcher = WebhookDispatcher(runtime)
    async with runtime.database.transaction() as session:
        [work] = await _claim(
            session, dispatcher_id=dispatcher.dispatcher_id, limit=10, per_endpoint=4, lease=timedelta(seconds=60)
        )
    async with runtime.database.transaction() as session:  # another dispatcher took it over meanwhile
        await session.execute(update(WebhookDelivery).values(locked_by="other"))

    await dispatcher._attempt(work)

    delivery = await delivery_row(runtime, work.delivery.id)
    assert (delivery.status, delivery.locked_by, delivery.attempts) == ("delivering", "other", 1)
    [attempt] = await attempts(runtime, delivery.id)
    assert attempt.status_code == 500


async def test_a_disabled_or_deleted_endpoints_deliveries_are_not_sent(runtime, tenant, receiver):
    keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/in")
    await emit_event(runtime, tenant.organization_id)
    await update_endpoint(runtime, endpoint_id, enabled=False)

    assert await WebhookDispatcher(runtime).run_once() == 1

    [delivery] = await deliveries(runtime, endpoint_id)
    assert delivery.status == "failed"
    assert await attempts(runtime, delivery.id) == []
    assert keeper.received == []


async def test_three_days_of_failure_disable_the_endpoint_and_tell_the_organization(
    runtime, tenant, receiver, frozen_clock
):
    keeper, base = receiver
    failing_id, _ = await add_endpoint(
        runtime, tenant.organization_id, f"{base}/status/500", events=["contact.created"]
    )
    watcher_id, _ = await add_endpoint(
        runtime, tenant.organization_id, f"{base}/watcher", events=[types.WEBHOOK_ENDPOINT_DISABLED]
    )
    dispatcher = WebhookDispatcher(runtime)
    start = now()

    await emit_event(runtime, tenant.organization_id)
    await dispatcher.run_once()
    assert (await endpoint_row(runtime, failing_id)).failing_since == start

    for half_days in range(1, 5):  # it keeps failing every 12 hours, as retries and new events find it down
        clock.freeze(start + timedelta(hours=12 * half_days))
        await emit_event(runtime, tenant.organization_id)
        await dispatcher.run_once()
    endpoint = await endpoint_row(runtime, failing_id)
    assert endpoint.enabled
    assert endpoint.failing_since == start  # the clock runs from the first failure

    clock.freeze(start + timedelta(days=2, hours=18))
    await emit_event(runtime, tenant.organization_id)
    await dispatcher.run_once()
    clock.freeze(start + timedelta(days=3))
    await emit_event(runtime, tenant.organization_id)
    await dispatcher.run_once()

    endpoint = await endpoint_row(runtime, failing_id)
    assert not endpoint.enabled
    assert endpoint.disabled_at == now()
    assert endpoint.disabled_reason is not None
    assert "no delivery succeeded for 3 days" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason
    # Nothing more is attempted for it: what was pending is failed.
    assert {delivery.status for delivery in await deliveries(runtime, failing_id)} == {"failed"}
    clock.advance(timedelta(days=1))
    await emit_event(runtime, tenant.organization_id)
    assert len(await deliveries(runtime, failing_id)) == 7  # disabled endpoints get no new deliveries

    async with runtime.database.sessions() as session:
        [told] = list(await session.scalars(select(Event).where(Event.type == types.WEBHOOK_ENDPOINT_DISABLED)))
    assert told.organization_id == tenant.organization_id
    assert told.data == endpoint_out(endpoint).model_dump(mode="json")
    assert told.data["enabled"] is False
    assert told.data["disabledReason"] == endpoint.disabled_reason
    # ...and the organization's other endpoint hears of it.
    await dispatcher.run_once()
    [heard] = keeper.events(types.WEBHOOK_ENDPOINT_DISABLED)
    assert heard["data"]["id"] == failing_id
    assert [delivery.status for delivery in await deliveries(runtime, watcher_id)] == ["succeeded"]


async def test_a_success_in_between_restarts_the_failure_clock(runtime, tenant, receiver, frozen_clock):
    _keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/status/500")
    dispatcher = WebhookDispatcher(runtime)
    start = now()

    async def deliver_one_at(moment, path):  # type: ignore[no-untyped-def]
        clock.freeze(moment)
        await update_endpoint(runtime, endpoint_id, url=f"{base}{path}")
        async with runtime.database.transaction() as session:  # only the new event's delivery is due now
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.status == "pending")
                .values(status="failed", next_attempt_at=None)
            )
        await emit_event(runtime, tenant.organization_id)
        assert await dispatcher.run_once() == 1

    await deliver_one_at(start, "/status/500")
    await deliver_one_at(start + timedelta(days=2), "/in")  # it recovered
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is None
    await deliver_one_at(start + timedelta(days=2, hours=1), "/status/500")
    await deliver_one_at(start + timedelta(days=3, hours=1), "/status/500")

    endpoint = await endpoint_row(runtime, endpoint_id)
    assert endpoint.enabled  # failing for one day, not three
    assert endpoint.failing_since == start + timedelta(days=2, hours=1)

    for moment in (timedelta(days=4), timedelta(days=4, hours=20), timedelta(days=5, hours=2)):
        await deliver_one_at(start + moment, "/status/500")
    assert not (await endpoint_row(runtime, endpoint_id)).enabled


async def test_a_failure_after_a_quiet_spell_starts_the_clock_afresh(runtime, tenant, receiver, frozen_clock):
    _keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/status/500")
    dispatcher = WebhookDispatcher(runtime)
    start = now()
    await emit_event(runtime, tenant.organization_id)
    await dispatcher.run_once()
    async with runtime.database.transaction() as session:  # it ran out of retries; nothing was sent since
        await session.execute(update(WebhookDelivery).values(status="failed", next_attempt_at=None))

    clock.freeze(start + timedelta(days=10))
    await emit_event(runtime, tenant.organization_id)
    await dispatcher.run_once()

    endpoint = await endpoint_row(runtime, endpoint_id)
    assert endpoint.enabled  # one failure after ten quiet days is not three days of failing
    assert endpoint.failing_since == start + timedelta(days=10)


async def _all_succeeded(runtime: Runtime, endpoint_id: str, count: int) -> bool:
    rows = await deliveries(runtime, endpoint_id)
    return len(rows) == count and all(row.status == "succeeded" for row in rows)


async def _until(condition, *, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for `condition` (a safety limit, not a speed assertion: only a stuck dispatcher reaches it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await condition():
        if loop.time() > deadline:
            pytest.fail("the condition did not come true")
        await asyncio.sleep(0.05)

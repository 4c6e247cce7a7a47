"""Sends a person asks for: re-sending one delivery now, and a signed `ping` to check an endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select
from standardwebhooks import Webhook

from kaanha.errors import NotFound
from kaanha.events import types
from kaanha.kit.clock import clock, now
from kaanha.models import Event, WebhookDelivery
from kaanha.runtime import Runtime
from kaanha.testing.fake_graph import BackgroundServer
from kaanha.testing.webhook_receiver import WebhookReceiver
from kaanha.webhooks.dispatcher import WebhookDispatcher, deliver_now, send_test
from kaanha.webhooks.schedule import JITTER, RETRY_DELAYS
from tests.webhooks.delivery_support import (
    add_endpoint,
    attempts,
    deliveries,
    delivery_row,
    emit_event,
    endpoint_row,
    loopback_only,
    update_endpoint,
)


@pytest_asyncio.fixture
async def receiver(runtime: Runtime) -> AsyncIterator[tuple[WebhookReceiver, str]]:
    runtime.settings.allow_private_urls = True
    keeper = WebhookReceiver()
    async with BackgroundServer(keeper.app) as server, loopback_only(runtime):
        yield keeper, server.url


async def failed_once(runtime: Runtime, organization_id: str, url: str) -> tuple[str, WebhookDelivery]:
    """An endpoint whose first delivery failed: (endpoint id, the pending delivery)."""
    endpoint_id, _ = await add_endpoint(runtime, organization_id, url)
    await emit_event(runtime, organization_id)
    await WebhookDispatcher(runtime).run_once()
    [delivery] = await deliveries(runtime, endpoint_id)
    assert delivery.status == "pending"
    return endpoint_id, delivery


async def test_a_retry_that_succeeds_settles_the_delivery_and_the_endpoint(runtime, tenant, receiver, frozen_clock):
    keeper, base = receiver
    endpoint_id, delivery = await failed_once(runtime, tenant.organization_id, f"{base}/status/500")
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is not None
    await update_endpoint(runtime, endpoint_id, url=f"{base}/fixed")

    attempt = await deliver_now(runtime, organization_id=tenant.organization_id, delivery_id=delivery.id)

    assert (attempt.succeeded, attempt.status_code, attempt.trigger, attempt.attempt) == (True, 200, "manual", 2)
    assert attempt.delivery_id == delivery.id
    assert attempt.response_excerpt == "ok"
    settled = await delivery_row(runtime, delivery.id)
    assert (settled.status, settled.attempts, settled.next_attempt_at) == ("succeeded", 2, None)
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is None
    assert [item.path for item in keeper.received] == ["/status/500", "/fixed"]
    assert keeper.received[0].headers["webhook-id"] == keeper.received[1].headers["webhook-id"]
    assert [row.id for row in await attempts(runtime, delivery.id)][-1] == attempt.id


async def test_a_retry_that_fails_leaves_the_schedule_as_it_was(runtime, tenant, receiver, frozen_clock):
    _keeper, base = receiver
    endpoint_id, delivery = await failed_once(runtime, tenant.organization_id, f"{base}/status/500")
    failing_since = (await endpoint_row(runtime, endpoint_id)).failing_since

    attempt = await deliver_now(runtime, organization_id=tenant.organization_id, delivery_id=delivery.id)

    assert (attempt.succeeded, attempt.status_code, attempt.trigger) == (False, 500, "manual")
    after = await delivery_row(runtime, delivery.id)
    assert (after.status, after.next_attempt_at) == ("pending", delivery.next_attempt_at)
    assert (await endpoint_row(runtime, endpoint_id)).failing_since == failing_since
    # The schedule goes on from where it was: the manual attempt didn't use up a step.
    assert delivery.next_attempt_at is not None
    clock.freeze(delivery.next_attempt_at)
    await WebhookDispatcher(runtime).run_once()
    scheduled = await delivery_row(runtime, delivery.id)
    assert scheduled.attempts == 3
    assert scheduled.next_attempt_at is not None
    assert scheduled.next_attempt_at - now() >= RETRY_DELAYS[1] * (1 - JITTER)


async def test_a_failed_delivery_stays_failed_unless_the_retry_succeeds(runtime, tenant, receiver):
    _keeper, base = receiver
    endpoint_id, delivery = await failed_once(runtime, tenant.organization_id, f"{base}/status/500")
    async with runtime.database.transaction() as session:
        settled = await session.get(WebhookDelivery, delivery.id)
        assert settled is not None
        settled.status, settled.next_attempt_at = "failed", None

    await deliver_now(runtime, organization_id=tenant.organization_id, delivery_id=delivery.id)
    assert (await delivery_row(runtime, delivery.id)).status == "failed"

    await update_endpoint(runtime, endpoint_id, url=f"{base}/fixed", enabled=False)  # a manual retry works anyway
    attempt = await deliver_now(runtime, organization_id=tenant.organization_id, delivery_id=delivery.id)
    assert attempt.succeeded
    assert (await delivery_row(runtime, delivery.id)).status == "succeeded"


async def test_retrying_another_organizations_delivery_is_not_found(runtime, tenant, other_tenant, receiver):
    keeper, base = receiver
    _endpoint_id, delivery = await failed_once(runtime, other_tenant.organization_id, f"{base}/status/500")

    for delivery_id in (delivery.id, "whd_unknown"):
        with pytest.raises(NotFound) as caught:
            await deliver_now(runtime, organization_id=tenant.organization_id, delivery_id=delivery_id)
        assert caught.value.code == "webhook_delivery_not_found"
    assert len(keeper.received) == 1  # only the first, scheduled attempt
    assert (await delivery_row(runtime, delivery.id)).attempts == 1


async def test_a_test_ping_is_signed_sent_to_that_endpoint_only_and_reported(runtime, tenant, receiver):
    keeper, base = receiver
    endpoint_id, secret = await add_endpoint(runtime, tenant.organization_id, f"{base}/one")
    other_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/other")

    attempt = await send_test(runtime, organization_id=tenant.organization_id, endpoint_id=endpoint_id)

    assert (attempt.succeeded, attempt.status_code, attempt.trigger, attempt.event_type) == (
        True,
        200,
        "manual",
        "ping",
    )
    [received] = keeper.received
    assert received.path == "/one"
    ping = Webhook(secret).verify(received.body, received.headers)
    assert ping["type"] == types.PING
    assert ping["id"] == attempt.event_id == received.headers["webhook-id"]
    assert ping["data"]["endpointId"] == endpoint_id
    assert ping["data"]["message"]
    [delivery] = await deliveries(runtime, endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.locked_by) == ("succeeded", 1, None)
    assert await deliveries(runtime, other_id) == []
    assert await WebhookDispatcher(runtime).run_once() == 0
    async with runtime.database.sessions() as session:
        [event] = list(await session.scalars(select(Event)))
    assert event.type == types.PING


async def test_a_failed_test_ping_is_reported_and_not_retried(runtime, tenant, receiver, frozen_clock):
    keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/status/404")

    attempt = await send_test(runtime, organization_id=tenant.organization_id, endpoint_id=endpoint_id)

    assert (attempt.succeeded, attempt.status_code, attempt.response_excerpt) == (False, 404, "answered 404")
    [delivery] = await deliveries(runtime, endpoint_id)
    assert delivery.status == "failed"
    clock.advance(timedelta(days=1))
    assert await WebhookDispatcher(runtime).run_once() == 0
    assert len(keeper.received) == 1
    # A test's failure is not the endpoint's: its failure clock is the schedule's.
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is None


async def test_a_disabled_endpoint_can_be_tested(runtime, tenant, receiver):
    keeper, base = receiver
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, f"{base}/in", enabled=False)

    attempt = await send_test(runtime, organization_id=tenant.organization_id, endpoint_id=endpoint_id)

    assert attempt.succeeded
    assert len(keeper.received) == 1
    assert not (await endpoint_row(runtime, endpoint_id)).enabled  # enabling it is the person's decision


async def test_testing_another_organizations_endpoint_is_not_found(runtime, tenant, other_tenant, receiver):
    keeper, base = receiver
    theirs, _ = await add_endpoint(runtime, other_tenant.organization_id, f"{base}/in")

    for endpoint_id in (theirs, "whe_unknown"):
        with pytest.raises(NotFound) as caught:
            await send_test(runtime, organization_id=tenant.organization_id, endpoint_id=endpoint_id)
        assert caught.value.code == "webhook_endpoint_not_found"
    assert keeper.received == []
    async with runtime.database.sessions() as session:
        assert list(await session.scalars(select(Event))) == []


async def test_a_refused_target_is_reported_by_a_test_ping(runtime, tenant, receiver):
    _keeper, _base = receiver
    runtime.settings.allow_private_urls = False
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, "http://10.1.2.3/hooks")

    attempt = await send_test(runtime, organization_id=tenant.organization_id, endpoint_id=endpoint_id)

    assert not attempt.succeeded
    assert attempt.error == "refused: 10.1.2.3 is a private address"

"""No transaction is open while a gateway answers: other writers go on, and Idempotency-Keys still replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import httpx
import pytest

from kaanha.kit.clock import clock
from kaanha.testing.fake_payments import FakeRazorpay
from tests.conftest import API, Tenant
from tests.helpers import assert_error
from tests.payment_links.support import Held, count_links, create, created, get_link, use_fake, use_razorpay

# Far longer than any of these requests takes when nothing holds the database; far shorter than the busy timeout.
PATIENCE = 5


@pytest.fixture
def fake() -> FakeRazorpay:
    return FakeRazorpay()


async def _write_while_the_gateway_answers(
    client: httpx.AsyncClient, tenant: Tenant, held: Held, gateway_call: Awaitable[httpx.Response]
) -> tuple[bool, httpx.Response, httpx.Response]:
    """Start `gateway_call`, and while the gateway holds its answer, create a contact with the same key.

    The clock moves a minute on before each request, so each stamps the key's last use: the request
    with the gateway call has written before it (SQLite's write lock), and the contact's request
    writes the very same row (a PostgreSQL row lock) besides its contact.
    """
    clock.advance(timedelta(minutes=2))
    calling = asyncio.ensure_future(gateway_call)
    await asyncio.wait_for(held.answering.wait(), PATIENCE)
    clock.advance(timedelta(minutes=2))
    writing = asyncio.ensure_future(
        client.post(f"{API}/contacts", json={"phone": "+919800000002", "name": "Meanwhile"}, headers=tenant.headers)
    )
    try:
        done, _ = await asyncio.wait({writing}, timeout=PATIENCE)
    finally:
        held.release.set()
    return writing in done, await writing, await calling


async def test_another_writer_goes_on_while_the_gateway_makes_a_link(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    held = Held(fake.app)
    await use_fake(runtime, fake, app=held)

    went_on, contact, link = await _write_while_the_gateway_answers(client, tenant, held, create(client, tenant))

    assert went_on, "the contact waited for the gateway: a transaction was held during the call"
    assert contact.status_code == 201, contact.text
    assert link.status_code == 201, link.text
    assert (await get_link(client, tenant, link.json()["id"]))["status"] == "created"


async def test_another_writer_goes_on_while_the_gateway_cancels_a_link(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)
    held = Held(fake.app)
    await use_fake(runtime, fake, app=held)

    cancel = client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)
    went_on, contact, cancelled = await _write_while_the_gateway_answers(client, tenant, held, cancel)

    assert went_on, "the contact waited for the gateway: a transaction was held during the call"
    assert contact.status_code == 201, contact.text
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert fake.links[link["gatewayLinkId"]]["status"] == "cancelled"


async def test_a_retry_with_the_idempotency_key_replays_without_asking_the_gateway_again(
    client, tenant, runtime, fake, frozen_clock
):
    await use_razorpay(client, tenant, runtime, fake)
    headers = {**tenant.headers, "Idempotency-Key": "order-1042"}
    body = {"amount": 50000, "description": "Order #1042", "phone": "+919876543210"}

    first = await client.post(f"{API}/payment-links", json=body, headers=headers)
    clock.advance(timedelta(hours=1))
    again = await client.post(f"{API}/payment-links", json=body, headers=headers)

    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(fake.links) == 1
    assert await count_links(runtime) == 1


async def test_an_expired_idempotency_key_makes_a_new_link(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    headers = {**tenant.headers, "Idempotency-Key": "order-1042"}
    body = {"amount": 50000, "description": "Order #1042", "phone": "+919876543210"}
    first = await client.post(f"{API}/payment-links", json=body, headers=headers)

    clock.advance(timedelta(hours=25))  # the key's record is cleared on its next use, before the gateway call
    second = await client.post(f"{API}/payment-links", json=body, headers=headers)
    replay = await client.post(f"{API}/payment-links", json=body, headers=headers)

    assert first.status_code == second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert replay.json() == second.json()
    assert await count_links(runtime) == 2


async def test_two_requests_racing_with_one_key_store_one_link_and_withdraw_the_other(
    client, tenant, runtime, fake, frozen_clock
):
    await use_razorpay(client, tenant, runtime, fake)
    held = Held(fake.app)
    await use_fake(runtime, fake, app=held)
    headers = {**tenant.headers, "Idempotency-Key": "order-1042"}
    body = {"amount": 50000, "description": "Order #1042", "phone": "+919876543210"}

    racing = [asyncio.ensure_future(client.post(f"{API}/payment-links", json=body, headers=headers)) for _ in "ab"]
    try:
        # Both have checked, committed, and reached the gateway before either answer comes back.
        await asyncio.wait_for(held.both_answering.wait(), PATIENCE)
    finally:
        held.release.set()
    answers = sorted(await asyncio.gather(*racing), key=lambda r: r.status_code)

    assert [r.status_code for r in answers] == [201, 409], [r.text for r in answers]
    assert_error(answers[1], 409, "idempotency_key_in_progress")
    assert await count_links(runtime) == 1
    stored = answers[0].json()["gatewayLinkId"]
    assert {gateway_id: link["status"] for gateway_id, link in fake.links.items()} == {
        gateway_id: "created" if gateway_id == stored else "cancelled" for gateway_id in fake.links
    }
    assert len(fake.links) == 2
    replay = await client.post(f"{API}/payment-links", json=body, headers=headers)
    assert replay.json() == answers[0].json()

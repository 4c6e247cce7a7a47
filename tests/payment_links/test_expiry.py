"""Expiry happens by itself: the periodic sweep flips overdue created links, once, with one event each."""

from __future__ import annotations

from datetime import timedelta

from kaanha.kit.clock import clock
from kaanha.worker.runner import run_periodic
from tests.conftest import API
from tests.helpers import assert_error
from tests.payment_links.support import UPI, created, events, get_link, put_settings

SWEEP = "payment_links.expire_due"


async def test_a_link_expires_when_its_time_passes(client, tenant, runtime, frozen_clock):
    await put_settings(client, tenant, **UPI)
    soon = await created(client, tenant, expiresAt=(frozen_clock + timedelta(hours=2)).isoformat())
    later = await created(client, tenant, expiresAt=(frozen_clock + timedelta(days=2)).isoformat())
    never = await created(client, tenant)

    clock.advance(timedelta(hours=1, minutes=59))
    await run_periodic(runtime, only=SWEEP)
    assert (await get_link(client, tenant, soon["id"]))["status"] == "created"

    clock.advance(timedelta(minutes=1))
    await run_periodic(runtime, only=SWEEP)
    await run_periodic(runtime, only=SWEEP)

    expired = await get_link(client, tenant, soon["id"])
    assert expired["status"] == "expired"
    assert expired["expiredAt"] == (frozen_clock + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert (await get_link(client, tenant, later["id"]))["status"] == "created"
    assert (await get_link(client, tenant, never["id"]))["status"] == "created"
    assert [(event["id"], event["status"]) for event in await events(runtime, tenant, "payment_link.expired")] == [
        (soon["id"], "expired")
    ]


async def test_paid_and_cancelled_links_never_expire(client, tenant, runtime, frozen_clock):
    await put_settings(client, tenant, **UPI, notifyOnPaid=False)
    expiry = (frozen_clock + timedelta(hours=1)).isoformat()
    paid = await created(client, tenant, expiresAt=expiry)
    cancelled = await created(client, tenant, expiresAt=expiry)
    await client.post(f"{API}/payment-links/{paid['id']}/mark-paid", headers=tenant.headers)
    await client.post(f"{API}/payment-links/{cancelled['id']}/cancel", headers=tenant.headers)

    clock.advance(timedelta(hours=3))
    await run_periodic(runtime, only=SWEEP)

    assert (await get_link(client, tenant, paid["id"]))["status"] == "paid"
    assert (await get_link(client, tenant, cancelled["id"]))["status"] == "cancelled"
    assert await events(runtime, tenant, "payment_link.expired") == []


async def test_an_expired_upi_link_can_still_be_marked_paid_but_not_cancelled(client, tenant, runtime, frozen_clock):
    await put_settings(client, tenant, **UPI, notifyOnPaid=False)
    link = await created(client, tenant, expiresAt=(frozen_clock + timedelta(hours=1)).isoformat())
    clock.advance(timedelta(hours=2))
    await run_periodic(runtime, only=SWEEP)

    assert_error(await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers), 409)
    r = await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"

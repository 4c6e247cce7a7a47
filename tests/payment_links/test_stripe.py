"""Stripe Checkout Sessions as payment links against the fake: create, expire, errors, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from kaanha.kit.clock import clock
from kaanha.payment_links.service import expire_overdue_links
from kaanha.testing.fake_payments import FakeStripe, WebhookCall
from kaanha.testing.fake_payments.common import random_id
from tests.conftest import API
from tests.helpers import assert_error, inbound
from tests.payment_links.support import (
    count_links,
    create,
    created,
    deliver,
    events,
    get_link,
    outbound_texts,
    put_settings,
    use_stripe,
)


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


async def test_a_link_is_a_checkout_session(client, tenant, runtime, fake, frozen_clock):
    await use_stripe(client, tenant, runtime, fake)

    link = await created(client, tenant, amount=50000, description="Order #1042", reference="INV-7")

    (method, path, form) = fake.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][currency]"] == "inr"
    assert form["line_items[0][price_data][unit_amount]"] == "50000"
    assert form["line_items[0][price_data][product_data][name]"] == "Order #1042"
    assert form["line_items[0][quantity]"] == "1"
    assert form["metadata[kaanha_link_id]"] == link["id"]
    assert form["metadata[reference]"] == "INV-7"
    assert form["success_url"] == f"http://127.0.0.1:8000/pay/{link['id']}"
    # Left out, the expiry is Stripe's default of 24 hours, made explicit.
    assert form["expires_at"] == str(int((frozen_clock + timedelta(hours=24)).timestamp()))
    assert link["expiresAt"] == "2026-11-25T10:00:00Z"
    assert link["gateway"] == "stripe"
    assert link["gatewayLinkId"].startswith("cs_test_")
    assert link["url"] == f"https://checkout.stripe.com/c/pay/{link['gatewayLinkId']}"


async def test_expiry_must_be_30_minutes_to_24_hours_ahead(client, tenant, runtime, fake, frozen_clock):
    await use_stripe(client, tenant, runtime, fake)
    calls = len(fake.requests)

    for delta in (timedelta(minutes=29), timedelta(hours=24, minutes=1)):
        r = await create(client, tenant, expiresAt=(frozen_clock + delta).isoformat())
        body = assert_error(r, 400, "invalid_expiry")
        assert "30 minutes and 24 hours" in body["error"]

    assert len(fake.requests) == calls
    link = await created(client, tenant, expiresAt=(frozen_clock + timedelta(minutes=30)).isoformat())
    assert link["expiresAt"] == "2026-11-24T10:30:00Z"


async def test_stripes_minimum_and_maximum_are_checked_first(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)

    below = await create(client, tenant, amount=49)
    above = await create(client, tenant, amount=100_000_000)
    yen = await created(client, tenant, amount=500, currency="JPY")

    assert "₹0.50" in assert_error(below, 400, "invalid_amount")["error"]
    assert_error(above, 400, "invalid_amount")
    assert yen["amountDisplay"] == "¥500"
    assert await count_links(runtime) == 1


async def test_a_wrong_secret_key_asks_to_fix_the_settings(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await put_settings(
        client, tenant, gateway="stripe", keySecret="sk_test_WrongKey9999", webhookSecret=fake.webhook_secret
    )

    body = assert_error(await create(client, tenant), 400, "payment_gateway_credentials_rejected")

    assert "Invalid API Key provided" in body["error"]
    assert "sk_test_WrongKey9999" not in body["error"]
    assert await count_links(runtime) == 0


async def test_a_stripe_outage_is_a_502_and_stores_nothing(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    fake.refuse_next("An unknown error occurred", status_code=500)

    body = assert_error(await create(client, tenant), 502, "payment_gateway_error")

    assert "An unknown error occurred" in body["error"]
    assert await count_links(runtime) == 0


async def test_the_completed_webhook_marks_the_link_paid_once(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=2500, description="Tea for two")
    webhook = fake.pay(link["gatewayLinkId"])

    assert (await deliver(client, "stripe", tenant, webhook)).status_code == 200
    assert (await deliver(client, "stripe", tenant, webhook)).status_code == 200

    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"
    assert len(await events(runtime, tenant, "payment_link.paid")) == 1
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹25.00 received for Tea for two. Thank you!"}
    ]


async def test_signatures_forged_missing_or_stale_are_refused(client, tenant, runtime, fake, frozen_clock):
    # A frozen clock: a signature 299 s old must still be fresh when the server reads it.
    await use_stripe(client, tenant, runtime, fake)
    link = await created(client, tenant)
    webhook = fake.pay(link["gatewayLinkId"])
    stale = int(clock.now().timestamp()) - 301
    other = FakeStripe(webhook_secret="whsec_SomeoneElse0001")

    for headers in (
        {**webhook.headers, "Stripe-Signature": other.sign(webhook.body)},
        {key: value for key, value in webhook.headers.items() if key != "Stripe-Signature"},
        {**webhook.headers, "Stripe-Signature": fake.sign(webhook.body, timestamp=stale)},
        {**webhook.headers, "Stripe-Signature": "v1=abc"},
    ):
        assert_error(await deliver(client, "stripe", tenant, webhook, headers=headers), 401, "invalid_signature")

    assert (await get_link(client, tenant, link["id"]))["status"] == "created"
    recent = int(clock.now().timestamp()) - 299
    fresh = await deliver(
        client,
        "stripe",
        tenant,
        webhook,
        headers={**webhook.headers, "Stripe-Signature": fake.sign(webhook.body, timestamp=recent)},
    )
    assert fresh.status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"


async def test_the_stale_check_uses_our_clock(client, tenant, runtime, fake, frozen_clock):
    await use_stripe(client, tenant, runtime, fake)
    link = await created(client, tenant)
    webhook = fake.pay(link["gatewayLinkId"])

    clock.advance(timedelta(minutes=5, seconds=1))

    assert_error(await deliver(client, "stripe", tenant, webhook), 401, "invalid_signature")
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"


async def test_cancel_expires_the_session_and_the_expired_event_changes_nothing_more(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    link = await created(client, tenant)

    r = await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert fake.sessions[link["gatewayLinkId"]]["status"] == "expired"
    assert (await deliver(client, "stripe", tenant, fake.webhooks[-1])).status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "cancelled"
    assert await events(runtime, tenant, "payment_link.expired") == []


async def test_the_expired_event_expires_the_link(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    link = await created(client, tenant)

    assert (await deliver(client, "stripe", tenant, fake.expire(link["gatewayLinkId"]))).status_code == 200

    assert (await get_link(client, tenant, link["id"]))["status"] == "expired"
    assert len(await events(runtime, tenant, "payment_link.expired")) == 1


async def test_other_stripe_events_are_acknowledged_and_ignored(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    body = b'{"id": "evt_other1", "type": "customer.created", "data": {"object": {"object": "customer"}}}'

    r = await client.post(
        f"/api/webhooks/stripe/{tenant.organization_id}", content=body, headers={"Stripe-Signature": fake.sign(body)}
    )

    assert r.status_code == 200


async def test_send_true_sends_the_checkout_url(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)

    link = await created(client, tenant, send=True)

    message = (await client.get(f"{API}/messages/{link['messageId']}", headers=tenant.headers)).json()
    assert message["content"]["interactive"]["action"]["parameters"]["url"] == link["url"]


async def test_a_send_refused_after_stripe_made_the_session_withdraws_it(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)
    runtime.settings.rate_limits.per_recipient = "1/hour"
    await client.post(
        f"{API}/send", json={"to": "+919876543210", "type": "text", "text": "hello"}, headers=tenant.headers
    )

    r = await create(client, tenant, send=True)

    assert_error(r, 429)
    assert await count_links(runtime) == 0
    (session,) = fake.sessions.values()
    assert session["status"] == "expired"  # nobody can pay a link we never stored


async def test_the_fake_answers_like_stripe(fake):
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://127.0.0.1") as http:
        anonymous = await http.post("/v1/checkout/sessions", data={"mode": "payment"})
        small = await http.post(
            "/v1/checkout/sessions",
            data={
                "mode": "payment",
                "line_items[0][price_data][currency]": "usd",
                "line_items[0][price_data][unit_amount]": "49",
                "line_items[0][price_data][product_data][name]": "Gum",
                "line_items[0][quantity]": "1",
            },
            headers={"Authorization": f"Bearer {fake.secret_key}"},
        )
        missing = await http.post(
            "/v1/checkout/sessions/cs_test_nope/expire", headers={"Authorization": f"Bearer {fake.secret_key}"}
        )

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"
    assert small.status_code == 400
    assert small.json()["error"] == {
        "type": "invalid_request_error",
        "message": "The Checkout Session's total amount due must add up to at least 0.50 usd",
        "code": "amount_too_small",
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


def resigned(fake: FakeStripe, call: WebhookCall, **session: Any) -> WebhookCall:
    """`call` with the Checkout Session's fields changed, as a new event signed with the real secret."""
    payload = call.json()
    payload["id"] = random_id("evt_", 24)
    payload["data"]["object"].update(session)
    body = json.dumps(payload).encode()
    return WebhookCall(call.event_type, body, {**call.headers, "Stripe-Signature": fake.sign(body)})


async def test_a_delayed_payment_is_paid_when_stripe_confirms_it(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=2500, description="Tea for two")

    completed = await deliver(client, "stripe", tenant, fake.pay(link["gatewayLinkId"], delayed=True))
    waiting = await get_link(client, tenant, link["id"])
    succeeded = fake.settle_delayed(link["gatewayLinkId"], succeeded=True)
    assert (await deliver(client, "stripe", tenant, succeeded)).status_code == 200

    assert completed.status_code == 200
    assert waiting["status"] == "created"  # the bank has not answered yet
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"
    assert len(await events(runtime, tenant, "payment_link.paid")) == 1
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹25.00 received for Tea for two. Thank you!"}
    ]


async def test_a_failed_delayed_payment_leaves_the_link_created(client, tenant, runtime, fake, caplog, frozen_clock):
    caplog.set_level(logging.INFO, logger="kaanha.payment_links")
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant)
    await deliver(client, "stripe", tenant, fake.pay(link["gatewayLinkId"], delayed=True))

    r = await deliver(client, "stripe", tenant, fake.settle_delayed(link["gatewayLinkId"], succeeded=False))

    assert r.status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"
    assert await events(runtime, tenant, "payment_link.paid") == []
    assert await outbound_texts(runtime, tenant) == []
    assert "delayed payment (a bank debit) failed" in caplog.text
    # It ends as any unpaid link does: at its expiry, by the sweep.
    clock.advance(timedelta(hours=25))
    async with runtime.database.transaction() as session:
        assert await expire_overdue_links(session) == 1
    assert (await get_link(client, tenant, link["id"]))["status"] == "expired"


async def test_a_paid_event_for_another_amount_or_currency_does_not_mark_the_link_paid(
    client, tenant, runtime, fake, caplog
):
    await use_stripe(client, tenant, runtime, fake)
    link = await created(client, tenant, amount=2500)
    genuine = fake.pay(link["gatewayLinkId"])

    for change in ({"amount_total": 2499}, {"currency": "usd"}, {"amount_total": None}):
        r = await deliver(client, "stripe", tenant, resigned(fake, genuine, **change))
        assert r.status_code == 200, r.text
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"
    assert await events(runtime, tenant, "payment_link.paid") == []
    assert "not marked paid" in caplog.text
    # More than asked (a fee or tax Stripe added on top) is still the link paid.
    assert (await deliver(client, "stripe", tenant, resigned(fake, genuine, amount_total=2600))).status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"


async def test_the_same_paid_event_delivered_twice_at_once_acts_once(client, tenant, runtime, fake):
    await use_stripe(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=2500, description="Tea for two")
    webhook = fake.pay(link["gatewayLinkId"])

    answers = await asyncio.gather(*(deliver(client, "stripe", tenant, webhook) for _ in range(2)))

    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert [event["id"] for event in await events(runtime, tenant, "payment_link.paid")] == [link["id"]]
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹25.00 received for Tea for two. Thank you!"}
    ]


async def test_the_fake_refuses_an_idempotency_key_reused_with_other_parameters(fake):
    import httpx

    form = {
        "mode": "payment",
        "line_items[0][price_data][currency]": "inr",
        "line_items[0][price_data][unit_amount]": "5000",
        "line_items[0][price_data][product_data][name]": "Order #1042",
        "line_items[0][quantity]": "1",
    }
    headers = {"Authorization": f"Bearer {fake.secret_key}", "Idempotency-Key": "pl_one"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://127.0.0.1") as http:
        first = await http.post("/v1/checkout/sessions", data=form, headers=headers)
        again = await http.post("/v1/checkout/sessions", data=form, headers=headers)
        changed = await http.post(
            "/v1/checkout/sessions",
            data={**form, "line_items[0][price_data][unit_amount]": "6000"},
            headers=headers,
        )

    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"
    assert "pl_one" in changed.json()["error"]["message"]
    assert len(fake.sessions) == 1

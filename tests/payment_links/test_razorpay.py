"""Razorpay Payment Links against the fake: create, cancel, errors, and its signed, idempotent webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from kaanha.kit.clock import clock
from kaanha.testing.fake_payments import FakeRazorpay, WebhookCall
from kaanha.testing.fake_payments.common import random_id
from tests.conftest import API
from tests.helpers import PHONE, assert_error, inbound
from tests.payment_links.support import (
    count_links,
    create,
    created,
    deliver,
    events,
    get_link,
    outbound_texts,
    put_settings,
    use_razorpay,
)


@pytest.fixture
def fake() -> FakeRazorpay:
    return FakeRazorpay()


async def test_a_link_is_made_with_razorpays_api(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    expires = frozen_clock + timedelta(days=2)

    link = await created(
        client, tenant, amount=50000, description="Order #1042", reference="INV-7", expiresAt=expires.isoformat()
    )

    (method, path, body) = fake.requests[-1]
    assert (method, path) == ("POST", "/v1/payment_links")
    assert body is not None
    assert body["amount"] == 50000
    assert body["currency"] == "INR"
    assert body["description"] == "Order #1042"
    assert body["reference_id"] == link["id"]
    assert body["notes"] == {"kaanha_link_id": link["id"], "reference": "INV-7"}
    assert body["customer"] == {"contact": "+919876543210"}
    assert body["notify"] == {"sms": False, "email": False}
    assert body["expire_by"] == int(expires.timestamp())
    made = fake.links[link["gatewayLinkId"]]
    assert link["url"] == made["short_url"]
    assert link["gateway"] == "razorpay"
    assert link["gatewayLinkId"].startswith("plink_")
    assert link["expiresAt"] == expires.isoformat().replace("+00:00", "Z")


async def test_wrong_keys_ask_to_fix_the_settings_and_store_nothing(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    await put_settings(
        client, tenant, gateway="razorpay", keyId=fake.key_id, keySecret="a-wrong-secret", webhookSecret="whatever1"
    )

    r = await create(client, tenant)

    body = assert_error(r, 400, "payment_gateway_credentials_rejected")
    assert "PUT /payment-settings" in body["error"]
    assert "Authentication failed" in body["error"]
    assert await count_links(runtime) == 0


async def test_a_razorpay_refusal_is_a_502_in_its_own_words_and_stores_nothing(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    fake.refuse_next("Payment Link creation is not enabled for this account")

    r = await create(client, tenant)

    body = assert_error(r, 502, "payment_gateway_error")
    assert "Payment Link creation is not enabled for this account" in body["error"]
    assert await count_links(runtime) == 0
    assert (await client.get(f"{API}/contacts", headers=tenant.headers)).json()["data"] == []


async def test_amounts_and_expiries_razorpay_would_refuse_never_reach_it(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    calls = len(fake.requests)
    for change, code in [
        ({"amount": 99}, "invalid_amount"),
        ({"amount": 50_000_001}, "invalid_amount"),
        ({"currency": "JPY"}, "unsupported_currency"),
        ({"expiresAt": (frozen_clock + timedelta(minutes=10)).isoformat()}, "invalid_expiry"),
        ({"expiresAt": (frozen_clock + timedelta(days=200)).isoformat()}, "invalid_expiry"),
    ]:
        assert_error(await create(client, tenant, **change), 400, code)

    assert len(fake.requests) == calls
    assert await count_links(runtime) == 0


async def test_a_usd_link_goes_through(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)

    link = await created(client, tenant, amount=1999, currency="usd")

    assert link["currency"] == "USD"
    assert link["amountDisplay"] == "$19.99"


async def test_the_paid_webhook_marks_the_link_paid_once_and_thanks_the_customer_once(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=50000, description="Order #1042")
    webhook = fake.pay(link["gatewayLinkId"])

    first = await deliver(client, "razorpay", tenant, webhook)
    again = await deliver(client, "razorpay", tenant, webhook)

    assert first.status_code == again.status_code == 200
    paid = await get_link(client, tenant, link["id"])
    assert paid["status"] == "paid"
    assert paid["paidAt"] is not None
    assert [event["id"] for event in await events(runtime, tenant, "payment_link.paid")] == [link["id"]]
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹500.00 received for Order #1042. Thank you!"}
    ]


async def test_forged_and_unsigned_webhooks_change_nothing(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)
    webhook = fake.pay(link["gatewayLinkId"])
    forged = {**webhook.headers, "X-Razorpay-Signature": FakeRazorpay(webhook_secret="not-theirs-1").sign(webhook.body)}
    unsigned = {key: value for key, value in webhook.headers.items() if key != "X-Razorpay-Signature"}

    assert_error(await deliver(client, "razorpay", tenant, webhook, headers=forged), 401, "invalid_signature")
    assert_error(await deliver(client, "razorpay", tenant, webhook, headers=unsigned), 401, "invalid_signature")
    tampered = webhook.body.replace(b'"amount_paid": 50000', b'"amount_paid": 1')
    r = await client.post(f"/api/webhooks/razorpay/{tenant.organization_id}", content=tampered, headers=webhook.headers)
    assert_error(r, 401, "invalid_signature")

    assert (await get_link(client, tenant, link["id"]))["status"] == "created"
    assert await events(runtime, tenant, "payment_link.paid") == []


async def test_an_organization_without_razorpay_gets_no_razorpay_webhooks(client, tenant, other_tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)
    webhook = fake.pay(link["gatewayLinkId"])

    r = await deliver(client, "razorpay", other_tenant, webhook)

    assert_error(r, 404, "payment_webhook_not_configured")
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"


async def test_cancel_cancels_at_razorpay_and_its_cancel_webhook_changes_nothing_more(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)

    r = await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert fake.links[link["gatewayLinkId"]]["status"] == "cancelled"
    assert fake.requests[-1][:2] == ("POST", f"/v1/payment_links/{link['gatewayLinkId']}/cancel")
    assert (await deliver(client, "razorpay", tenant, fake.webhooks[-1])).status_code == 200
    assert len(await events(runtime, tenant, "payment_link.cancelled")) == 1


async def test_a_cancel_razorpay_refuses_leaves_the_link_as_it_was(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)
    fake.pay(link["gatewayLinkId"])  # paid at Razorpay; its webhook has not arrived yet

    r = await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)

    body = assert_error(r, 502, "payment_gateway_error")
    assert "already paid" in body["error"]
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"


async def test_the_expired_webhook_expires_the_link(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)

    r = await deliver(client, "razorpay", tenant, fake.expire(link["gatewayLinkId"]))

    assert r.status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "expired"
    assert len(await events(runtime, tenant, "payment_link.expired")) == 1


async def test_razorpay_links_are_not_marked_paid_by_hand(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    link = await created(client, tenant)

    r = await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert_error(r, 400, "mark_paid_not_supported")
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"


async def test_the_fake_checks_basic_auth_like_razorpay(fake):
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://127.0.0.1") as http:
        anonymous = await http.post("/v1/payment_links", json={"amount": 100})
        token = base64.b64encode(f"{fake.key_id}:{fake.key_secret}".encode()).decode()
        small = await http.post(
            "/v1/payment_links", json={"amount": 99, "currency": "INR"}, headers={"Authorization": f"Basic {token}"}
        )

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["description"] == "Authentication failed"
    assert small.status_code == 400
    assert small.json()["error"] == {
        "code": "BAD_REQUEST_ERROR",
        "description": "The amount must be at least INR 1.00",
        "source": "business",
        "step": "payment_initiation",
        "reason": "input_validation_failed",
        "metadata": {},
        "field": "amount",
    }


def resigned(fake: FakeRazorpay, call: WebhookCall, **entity: Any) -> WebhookCall:
    """`call` with the link entity's fields changed, as a new event signed with the real secret."""
    payload = call.json()
    payload["payload"]["payment_link"]["entity"].update(entity)
    body = json.dumps(payload).encode()
    headers = {**call.headers, "X-Razorpay-Signature": fake.sign(body), "X-Razorpay-Event-Id": random_id("evt_")}
    return WebhookCall(event_type=call.event_type, body=body, headers=headers)


async def test_the_thank_you_is_not_the_first_response_to_the_customer(client, tenant, runtime, fake, frozen_clock):
    await use_razorpay(client, tenant, runtime, fake)
    await inbound(client, tenant, text="How do I pay?")
    link = await created(client, tenant, description="Order #1042")
    clock.advance(timedelta(minutes=1))

    await deliver(client, "razorpay", tenant, fake.pay(link["gatewayLinkId"]))

    assert [text["text"] for text in await outbound_texts(runtime, tenant)] == [
        "Payment of ₹500.00 received for Order #1042. Thank you!"
    ]
    report = (await client.get(f"{API}/analytics", headers=tenant.headers)).json()
    assert report["firstResponseSeconds"] == {"median": None, "p90": None}
    # A person's answer afterwards is the first response, timed from the customer's message.
    clock.advance(timedelta(minutes=1))
    sent = await client.post(
        f"{API}/send", json={"to": PHONE, "type": "text", "text": "Thanks, Asha!"}, headers=tenant.headers
    )
    assert sent.status_code == 201, sent.text
    report = (await client.get(f"{API}/analytics", headers=tenant.headers)).json()
    assert report["firstResponseSeconds"] == {"median": 120.0, "p90": 120.0}


async def test_a_paid_webhook_for_less_than_the_link_or_another_currency_does_not_mark_it_paid(
    client, tenant, runtime, fake, caplog
):
    await use_razorpay(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=50000)
    genuine = fake.pay(link["gatewayLinkId"])

    for change in ({"amount_paid": 100}, {"currency": "USD"}, {"amount_paid": None}):
        r = await deliver(client, "razorpay", tenant, resigned(fake, genuine, **change))

        assert r.status_code == 200, r.text  # acknowledged: a retry would say the same
        assert (await get_link(client, tenant, link["id"]))["status"] == "created"
    assert await events(runtime, tenant, "payment_link.paid") == []
    assert await outbound_texts(runtime, tenant) == []
    assert "not marked paid" in caplog.text
    # The genuine notification, for the whole amount, still marks it paid.
    assert (await deliver(client, "razorpay", tenant, genuine)).status_code == 200
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"


async def test_the_same_paid_webhook_delivered_twice_at_once_acts_once(client, tenant, runtime, fake):
    await use_razorpay(client, tenant, runtime, fake)
    await inbound(client, tenant)
    link = await created(client, tenant, amount=50000, description="Order #1042")
    webhook = fake.pay(link["gatewayLinkId"])

    answers = await asyncio.gather(*(deliver(client, "razorpay", tenant, webhook) for _ in range(2)))

    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"
    assert [event["id"] for event in await events(runtime, tenant, "payment_link.paid")] == [link["id"]]
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹500.00 received for Order #1042. Thank you!"}
    ]

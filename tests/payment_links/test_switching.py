"""Moving to another gateway: links made on the former one are still paid, cancelled and expired through it."""

from __future__ import annotations

from kaanha.testing.fake_payments import FakeRazorpay, FakeStripe
from tests.conftest import API
from tests.helpers import assert_error, inbound
from tests.payment_links.support import (
    UPI,
    created,
    deliver,
    events,
    get_link,
    outbound_texts,
    put_settings,
    use_razorpay,
    use_stripe,
)


async def test_a_razorpay_link_is_still_paid_and_cancelled_after_moving_to_stripe(client, tenant, runtime):
    razorpay, stripe = FakeRazorpay(), FakeStripe()
    await use_razorpay(client, tenant, runtime, razorpay)
    await inbound(client, tenant)
    to_pay = await created(client, tenant, amount=50000, description="Order #1")
    to_cancel = await created(client, tenant, description="Order #2")

    await use_stripe(client, tenant, runtime, stripe)
    paid = await deliver(client, "razorpay", tenant, razorpay.pay(to_pay["gatewayLinkId"]))
    cancelled = await client.post(f"{API}/payment-links/{to_cancel['id']}/cancel", headers=tenant.headers)

    assert paid.status_code == 200, paid.text
    assert (await get_link(client, tenant, to_pay["id"]))["status"] == "paid"
    assert [event["id"] for event in await events(runtime, tenant, "payment_link.paid")] == [to_pay["id"]]
    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹500.00 received for Order #1. Thank you!"}
    ]
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert razorpay.links[to_cancel["gatewayLinkId"]]["status"] == "cancelled"
    # New links are Stripe's, and Stripe's webhooks are verified with Stripe's own secret.
    new = await created(client, tenant)
    assert new["gateway"] == "stripe"
    assert (await deliver(client, "stripe", tenant, stripe.pay(new["gatewayLinkId"]))).status_code == 200
    assert (await get_link(client, tenant, new["id"]))["status"] == "paid"


async def test_a_stripe_link_is_still_paid_after_moving_to_upi(client, tenant, runtime):
    stripe = FakeStripe()
    await use_stripe(client, tenant, runtime, stripe)
    link = await created(client, tenant)

    await put_settings(client, tenant, **UPI)
    r = await deliver(client, "stripe", tenant, stripe.pay(link["gatewayLinkId"]))

    assert r.status_code == 200, r.text
    assert (await get_link(client, tenant, link["id"]))["status"] == "paid"
    assert (await created(client, tenant))["gateway"] == "upi"


async def test_a_former_gateways_webhook_is_still_checked_with_its_own_secret(client, tenant, runtime):
    razorpay, stripe = FakeRazorpay(), FakeStripe()
    await use_razorpay(client, tenant, runtime, razorpay)
    link = await created(client, tenant)
    await use_stripe(client, tenant, runtime, stripe)
    webhook = razorpay.pay(link["gatewayLinkId"])
    # Signed with Stripe's secret, which Razorpay never had: a forgery.
    forged = {
        **webhook.headers,
        "X-Razorpay-Signature": FakeRazorpay(webhook_secret=stripe.webhook_secret).sign(webhook.body),
    }

    assert_error(await deliver(client, "razorpay", tenant, webhook, headers=forged), 401, "invalid_signature")
    assert (await get_link(client, tenant, link["id"]))["status"] == "created"


async def test_an_organization_that_never_had_stripe_gets_no_stripe_webhooks(client, tenant, runtime):
    razorpay, stripe = FakeRazorpay(), FakeStripe()
    await use_razorpay(client, tenant, runtime, razorpay)
    body = b'{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {"object": "checkout.session"}}}'

    r = await client.post(
        f"/api/webhooks/stripe/{tenant.organization_id}", content=body, headers={"Stripe-Signature": stripe.sign(body)}
    )

    assert_error(r, 404, "payment_webhook_not_configured")

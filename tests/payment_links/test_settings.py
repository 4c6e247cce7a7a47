"""GET|PUT /payment-settings: per-gateway checks, secrets write-only and encrypted, invalid input changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from kaanha.models import PaymentGatewayAccount
from tests.conftest import API
from tests.helpers import assert_error
from tests.payment_links.support import UPI, put_settings

RAZORPAY = {
    "gateway": "razorpay",
    "keyId": "rzp_test_Abc123Def456",
    "keySecret": "razorpay-key-secret-1",
    "webhookSecret": "razorpay-webhook-secret-1",
}


async def test_before_any_settings_upi_is_the_gateway_and_nothing_is_set(client, tenant):
    r = await client.get(f"{API}/payment-settings", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json() | {"updatedAt": None} == {
        "gateway": "upi",
        "upiId": None,
        "payeeName": None,
        "keyId": None,
        "hasKeySecret": False,
        "hasWebhookSecret": False,
        "webhookUrl": None,
        "webhookEvents": [],
        "otherAccounts": [],
        "notifyOnPaid": True,
        "paidMessage": None,
        "updatedAt": None,
    }


async def test_upi_settings_are_stored(client, tenant):
    await put_settings(client, tenant, **UPI, notifyOnPaid=False)

    shown = (await client.get(f"{API}/payment-settings", headers=tenant.headers)).json()
    assert shown["gateway"] == "upi"
    assert shown["upiId"] == "asha.stores@okhdfcbank"
    assert shown["payeeName"] == "Asha Stores"
    assert shown["notifyOnPaid"] is False
    assert shown["webhookUrl"] is None


async def test_razorpay_secrets_are_write_only_and_encrypted_at_rest(client, tenant, runtime):
    put = await put_settings(client, tenant, **RAZORPAY)

    shown = (await client.get(f"{API}/payment-settings", headers=tenant.headers)).json()
    for answer in (put, shown):
        assert answer["keyId"] == "rzp_test_Abc123Def456"
        assert answer["hasKeySecret"] is True
        assert answer["hasWebhookSecret"] is True
        assert answer["webhookUrl"] == f"http://127.0.0.1:8000/api/webhooks/razorpay/{tenant.organization_id}"
        assert "payment_link.paid" in answer["webhookEvents"]
        assert "razorpay-key-secret-1" not in str(answer)
        assert "razorpay-webhook-secret-1" not in str(answer)
    async with runtime.database.transaction() as session:
        row = await session.scalar(select(PaymentGatewayAccount))
    assert row is not None
    assert row.gateway == "razorpay"
    assert row.key_secret_encrypted
    assert "razorpay-key-secret-1" not in row.key_secret_encrypted
    assert runtime.secret_box.decrypt(row.key_secret_encrypted) == "razorpay-key-secret-1"
    assert row.webhook_secret_encrypted
    assert runtime.secret_box.decrypt(row.webhook_secret_encrypted) == "razorpay-webhook-secret-1"


async def test_secrets_left_out_are_kept_while_the_gateway_stays(client, tenant, runtime):
    await put_settings(client, tenant, **RAZORPAY)

    answer = await put_settings(client, tenant, gateway="razorpay", keyId="rzp_test_Abc123Def456", notifyOnPaid=False)

    assert answer["hasKeySecret"] is True
    assert answer["hasWebhookSecret"] is True
    assert answer["notifyOnPaid"] is False
    async with runtime.database.transaction() as session:
        row = await session.scalar(select(PaymentGatewayAccount))
    assert row is not None
    assert row.key_secret_encrypted
    assert runtime.secret_box.decrypt(row.key_secret_encrypted) == "razorpay-key-secret-1"


async def test_a_former_gateways_account_is_kept_and_shown_and_its_secrets_carry_over_on_return(client, tenant):
    await put_settings(client, tenant, **RAZORPAY)

    stripe = await put_settings(
        client, tenant, gateway="stripe", keySecret="sk_test_abcdefgh1234", webhookSecret="whsec_abcdefgh1234"
    )
    upi = await put_settings(client, tenant, **UPI)

    assert stripe["gateway"] == "stripe"
    assert stripe["keyId"] is None
    assert stripe["otherAccounts"] == [
        {
            "gateway": "razorpay",
            "keyId": "rzp_test_Abc123Def456",
            "webhookUrl": f"http://127.0.0.1:8000/api/webhooks/razorpay/{tenant.organization_id}",
        }
    ]
    assert upi["hasKeySecret"] is False
    assert [account["gateway"] for account in upi["otherAccounts"]] == ["razorpay", "stripe"]
    # Back on Razorpay, its secrets are still there: only the key id needs repeating.
    back = await put_settings(client, tenant, gateway="razorpay", keyId="rzp_test_Abc123Def456")
    assert back["hasKeySecret"] is True
    assert back["hasWebhookSecret"] is True
    assert [account["gateway"] for account in back["otherAccounts"]] == ["stripe"]


async def test_switching_gateway_needs_that_gateways_secrets(client, tenant):
    await put_settings(client, tenant, **RAZORPAY)

    r = await client.put(
        f"{API}/payment-settings", json={"gateway": "stripe", "webhookSecret": "whsec_abc12345"}, headers=tenant.headers
    )

    body = assert_error(r, 400, "invalid_payment_settings")
    assert "keySecret" in body["error"]
    shown = (await client.get(f"{API}/payment-settings", headers=tenant.headers)).json()
    assert shown["gateway"] == "razorpay"


async def test_stripe_settings_show_stripes_webhook_url(client, tenant):
    answer = await put_settings(
        client, tenant, gateway="stripe", keySecret="sk_test_abcdefgh1234", webhookSecret="whsec_abcdefgh1234"
    )

    assert answer["webhookUrl"].endswith(f"/api/webhooks/stripe/{tenant.organization_id}")
    assert answer["webhookEvents"] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    ]


async def test_invalid_settings_name_the_field_and_change_nothing(client, tenant):
    await put_settings(client, tenant, **UPI)
    cases = [
        ({"gateway": "upi", "upiId": "not a vpa", "payeeName": "X"}, "upiId"),
        ({"gateway": "upi", "upiId": "asha@", "payeeName": "X"}, "upiId"),
        ({"gateway": "upi", "upiId": "asha@okicici"}, "payeeName"),
        ({"gateway": "upi", "upiId": "asha@okicici", "payeeName": "X", "keyId": "rzp_test_1"}, "keyId"),
        ({"gateway": "razorpay", "keySecret": "abcdefgh1", "webhookSecret": "abcdefgh1"}, "keyId"),
        ({**RAZORPAY, "keyId": "pk_test_123456"}, "keyId"),
        ({"gateway": "razorpay", "keyId": "rzp_test_X1", "webhookSecret": "abcdefgh1"}, "keySecret"),
        ({"gateway": "razorpay", "keyId": "rzp_test_X1", "keySecret": "abcdefgh1"}, "webhookSecret"),
        ({"gateway": "stripe", "keySecret": "pk_test_abcdefgh", "webhookSecret": "whsec_abcdefgh"}, "keySecret"),
        ({"gateway": "stripe", "keySecret": "sk_test_abcdefgh", "webhookSecret": "abcdefgh123"}, "webhookSecret"),
        ({"gateway": "paypal"}, "gateway"),
        ({**UPI, "notifyOnPaid": "sometimes"}, "notifyOnPaid"),
        ({**UPI, "unknownField": 1}, "unknownField"),
    ]
    for body, field in cases:
        r = await client.put(f"{API}/payment-settings", json=body, headers=tenant.headers)

        answer = assert_error(r, 400)
        assert field in answer["error"], (body, answer)

    shown = (await client.get(f"{API}/payment-settings", headers=tenant.headers)).json()
    assert shown["upiId"] == UPI["upiId"]
    assert shown["payeeName"] == UPI["payeeName"]
    assert shown["gateway"] == "upi"


async def test_settings_need_the_payment_links_scopes(client, runtime):
    from tests.conftest import make_tenant

    reader = await make_tenant(runtime, "Reader", scopes=["payment_links:read"])
    outsider = await make_tenant(runtime, "Outsider", scopes=["contacts:read"])

    assert (await client.get(f"{API}/payment-settings", headers=reader.headers)).status_code == 200
    assert_error(await client.put(f"{API}/payment-settings", json=UPI, headers=reader.headers), 403)
    assert_error(await client.get(f"{API}/payment-settings", headers=outsider.headers), 403)

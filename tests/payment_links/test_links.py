"""POST/GET /payment-links, cancel and mark-paid on the embedded UPI gateway, send: true, and bad input."""

from __future__ import annotations

from datetime import timedelta

from kaanha.kit.clock import now
from tests.conftest import API
from tests.helpers import assert_error, inbound
from tests.payment_links.support import (
    CUSTOMER,
    UPI,
    count_links,
    create,
    created,
    events,
    get_link,
    outbound_texts,
    put_settings,
)


async def test_a_upi_link_is_our_payment_page_for_a_new_contact(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)

    link = await created(client, tenant, amount=50000, description="Order #1042", reference="INV-7")

    assert link["id"].startswith("pl_")
    assert link["url"] == f"http://127.0.0.1:8000/pay/{link['id']}"
    assert link["amount"] == 50000
    assert link["amountDisplay"] == "₹500.00"
    assert link["currency"] == "INR"
    assert link["description"] == "Order #1042"
    assert link["reference"] == "INV-7"
    assert link["status"] == "created"
    assert link["gateway"] == "upi"
    assert link["expiresAt"] is None
    assert link["paidAt"] is None
    assert link["createdAt"].endswith("Z")
    contacts = (await client.get(f"{API}/contacts", headers=tenant.headers)).json()["data"]
    assert [(c["id"], c["phone"]) for c in contacts] == [(link["contactId"], CUSTOMER)]
    assert await get_link(client, tenant, link["id"]) == link


async def test_a_link_for_a_known_contact_by_id_or_by_a_phone_written_another_way(client, tenant):
    await put_settings(client, tenant, **UPI)
    contact = (await client.post(f"{API}/contacts", json={"phone": CUSTOMER}, headers=tenant.headers)).json()

    by_id = await created(client, tenant, contactId=contact["id"], phone=None)
    by_phone = await created(client, tenant, phone="098765 43210")

    assert by_id["contactId"] == contact["id"]
    assert by_phone["contactId"] == contact["id"]


async def test_list_filters_by_status_and_contact_newest_first(client, tenant):
    await put_settings(client, tenant, **UPI)
    first = await created(client, tenant, description="First")
    second = await created(client, tenant, description="Second", phone="+919812345678")
    third = await created(client, tenant, description="Third")
    await client.post(f"{API}/payment-links/{second['id']}/cancel", headers=tenant.headers)

    everything = (await client.get(f"{API}/payment-links", headers=tenant.headers)).json()
    open_ones = (await client.get(f"{API}/payment-links?status=created", headers=tenant.headers)).json()
    theirs = (
        await client.get(f"{API}/payment-links?contactId={first['contactId']}&limit=1", headers=tenant.headers)
    ).json()

    assert [link["id"] for link in everything["data"]] == [third["id"], second["id"], first["id"]]
    assert everything["pagination"] == {"page": 1, "limit": 20, "total": 3, "totalPages": 1}
    assert [link["id"] for link in open_ones["data"]] == [third["id"], first["id"]]
    assert [link["id"] for link in theirs["data"]] == [third["id"]]
    assert theirs["pagination"]["total"] == 2
    assert_error(await client.get(f"{API}/payment-links?status=lost", headers=tenant.headers), 400)
    assert_error(await client.get(f"{API}/payment-links?limit=101", headers=tenant.headers), 400)


async def test_cancel_ends_a_created_link_once(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)
    link = await created(client, tenant)

    r = await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["cancelledAt"] is not None
    again = await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers)
    assert_error(again, 409, "payment_link_not_cancellable")
    assert_error(await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers), 409)
    assert [event["id"] for event in await events(runtime, tenant, "payment_link.cancelled")] == [link["id"]]


async def test_the_organization_marks_a_upi_link_paid(client, tenant, runtime):
    await put_settings(client, tenant, **UPI, notifyOnPaid=False)
    link = await created(client, tenant)

    r = await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    assert r.json()["paidAt"] is not None
    assert_error(await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers), 409)
    assert_error(await client.post(f"{API}/payment-links/{link['id']}/cancel", headers=tenant.headers), 409)
    paid = await events(runtime, tenant, "payment_link.paid")
    assert [(event["id"], event["status"]) for event in paid] == [(link["id"], "paid")]
    assert await outbound_texts(runtime, tenant) == []


async def test_paid_tells_the_customer_while_the_window_is_open(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)
    await inbound(client, tenant, text="Can I pay by UPI?")
    link = await created(client, tenant, amount=50000, description="Order #1042")

    await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert await outbound_texts(runtime, tenant) == [
        {"type": "text", "text": "Payment of ₹500.00 received for Order #1042. Thank you!"}
    ]


async def test_paid_uses_the_organizations_own_words(client, tenant, runtime):
    await put_settings(client, tenant, **UPI, paidMessage="Got {amount} for {description}, thanks!")
    await inbound(client, tenant)
    link = await created(client, tenant, amount=12345, description="2 kg mangoes")

    await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert await outbound_texts(runtime, tenant) == [{"type": "text", "text": "Got ₹123.45 for 2 kg mangoes, thanks!"}]


async def test_paid_outside_the_window_sends_nothing(client, tenant, runtime, frozen_clock):
    await put_settings(client, tenant, **UPI)
    await inbound(client, tenant)
    link = await created(client, tenant)
    from kaanha.kit.clock import clock

    clock.advance(timedelta(hours=25))
    r = await client.post(f"{API}/payment-links/{link['id']}/mark-paid", headers=tenant.headers)

    assert r.json()["status"] == "paid"
    assert await outbound_texts(runtime, tenant) == []


async def test_send_puts_the_link_in_the_conversation_with_a_pay_button(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)
    await inbound(client, tenant)

    link = await created(client, tenant, send=True, amount=50000, description="Order #1042", reference="INV-7")

    assert link["messageId"] is not None
    message = (await client.get(f"{API}/messages/{link['messageId']}", headers=tenant.headers)).json()
    assert message["type"] == "interactive"
    assert message["contactId"] == link["contactId"]
    assert message["content"]["interactive"] == {
        "type": "cta_url",
        "body": {"text": "Payment request: ₹500.00 for Order #1042.\nReference: INV-7"},
        "action": {"name": "cta_url", "parameters": {"display_text": "Pay", "url": link["url"]}},
    }


async def test_send_with_the_window_closed_creates_nothing(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)

    r = await create(client, tenant, send=True)

    assert_error(r, 400, "outside_customer_service_window")
    assert await count_links(runtime) == 0
    assert (await client.get(f"{API}/contacts", headers=tenant.headers)).json()["data"] == []
    assert await outbound_texts(runtime, tenant) == []


async def test_an_idempotency_key_replays_the_first_link(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)
    body = {"amount": 50000, "description": "Order #1042", "phone": CUSTOMER}
    headers = {**tenant.headers, "Idempotency-Key": "order-1042"}

    first = await client.post(f"{API}/payment-links", json=body, headers=headers)
    second = await client.post(f"{API}/payment-links", json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await count_links(runtime) == 1


async def test_without_payment_settings_a_link_says_what_to_set_up(client, tenant, runtime):
    r = await create(client, tenant)

    body = assert_error(r, 400, "payment_settings_incomplete")
    assert "PUT /payment-settings" in body["error"]
    assert await count_links(runtime) == 0


async def test_bad_input_is_refused_and_writes_nothing(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)
    cases = [
        ({"amount": "500"}, "amount"),
        ({"amount": 500.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": -100}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 10**15}, "amount"),
        ({"amount": 10_000_001}, "amount"),  # above UPI's ₹1,00,000
        ({"amount": 99}, "amount"),  # below ₹1.00
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"currency": "USD"}, "currency"),  # UPI takes rupees only
        ({"description": ""}, "description"),
        ({"description": "x" * 256}, "description"),
        ({"phone": "not a phone"}, "phone"),
        ({"phone": None}, "contactId or phone"),
        ({"contactId": "ctc_x"}, "contactId or phone"),
        ({"expiresAt": (now() - timedelta(minutes=1)).isoformat()}, "expiresAt"),
        ({"expiresAt": "2030-01-01T10:00:00"}, "expiresAt"),  # no time zone
        ({"send": "yes please"}, "send"),
        ({"colour": "blue"}, "colour"),
    ]
    for change, field in cases:
        r = await create(client, tenant, **change)

        answer = assert_error(r, 400)
        assert field in answer["error"] or field.lower() in answer["error"].lower(), (change, answer)

    assert await count_links(runtime) == 0
    assert (await client.get(f"{API}/contacts", headers=tenant.headers)).json()["data"] == []


async def test_an_unknown_contact_id_is_not_found(client, tenant, runtime):
    await put_settings(client, tenant, **UPI)

    r = await create(client, tenant, phone=None, contactId="ctc_doesnotexist")

    assert_error(r, 404)
    assert await count_links(runtime) == 0


async def test_links_need_the_payment_links_scopes(client, runtime):
    from tests.conftest import make_tenant

    reader = await make_tenant(runtime, "Reader", scopes=["payment_links:read"])

    assert (await client.get(f"{API}/payment-links", headers=reader.headers)).status_code == 200
    assert_error(await create(client, reader), 403)

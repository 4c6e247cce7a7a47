"""Delivery statuses: they only move forward, whatever order or how often Meta's status webhooks arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kaanha.kit.clock import clock
from kaanha.messages.status import advance_status
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.whatsapp.inbound import InboundSummary, process_payload
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant

PHONE = "+919876543210"
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_webhook(phone_number_id: str, *statuses: dict[str, Any]) -> dict[str, Any]:
    """A `messages` webhook carrying statuses, shaped like Meta's (see the status_*.json corpus)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
                            "statuses": list(statuses),
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def status(
    wamid: str, name: str, at: datetime, *, errors: list[dict[str, Any]] | None = None, recipient: str = "919876543210"
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(int(at.timestamp())),
        "recipient_id": recipient,
    }
    if name in ("sent", "delivered", "read"):
        item["conversation"] = {"id": "7270432eae37498234f4444b35ffc5", "origin": {"type": "service"}}
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    if errors is not None:
        item["errors"] = errors
    return item


ECOSYSTEM_ERROR = {
    "code": 131049,
    "title": "This message was not delivered to maintain healthy ecosystem engagement.",
    "message": "This message was not delivered to maintain healthy ecosystem engagement.",
    "error_data": {
        "details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    },
    "href": "/documentation/business-messaging/whatsapp/support/error-codes",
}


async def phone_number_id(runtime: Runtime, tenant: Tenant) -> str:
    async with runtime.database.sessions() as session:
        connection = await get_connection(session, tenant.organization_id)
    assert connection.phone_number_id
    return connection.phone_number_id


async def deliver(runtime: Runtime, payload: dict[str, Any]) -> InboundSummary:
    async with runtime.database.transaction() as session:
        return await process_payload(session, payload)


async def get_message(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


async def sent_message(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> dict[str, Any]:
    """A text to a customer who just wrote, handed to WhatsApp (status `sent`) at START."""
    response = await client.post(
        f"{API}/sandbox/inbound", json={"from": PHONE, "name": "Asha", "text": "Hi"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"{API}/send", json={"to": PHONE, "type": "text", "text": "Hello Asha"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    await drain(runtime)
    message = await get_message(client, tenant, response.json()["id"])
    assert message["status"] == "sent"
    assert message["whatsappMessageId"]
    return message


async def test_read_before_delivered_ends_read_and_never_goes_back(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    wamid = message["whatsappMessageId"]

    await deliver(runtime, status_webhook(number, status(wamid, "read", START + timedelta(seconds=5))))
    read = await get_message(client, tenant, message["id"])
    assert read["status"] == "read"
    assert read["readAt"] == iso(START + timedelta(seconds=5))
    # A read implies a delivery, even when Meta never reported one.
    assert read["deliveredAt"] == iso(START + timedelta(seconds=5))

    for late in ("delivered", "sent", "delivered"):
        await deliver(runtime, status_webhook(number, status(wamid, late, START + timedelta(seconds=2))))
        assert await get_message(client, tenant, message["id"]) == read


async def test_statuses_in_one_batch_in_any_order(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    wamid = message["whatsappMessageId"]
    batch = status_webhook(
        number,
        status(wamid, "read", START + timedelta(seconds=9)),
        status(wamid, "delivered", START + timedelta(seconds=4)),
        status(wamid, "sent", START + timedelta(seconds=1)),
    )

    summary = await deliver(runtime, batch)

    assert summary.statuses == 3
    final = await get_message(client, tenant, message["id"])
    assert final["status"] == "read"
    assert final["sentAt"] == iso(START)
    assert final["readAt"] == iso(START + timedelta(seconds=9))


async def test_duplicate_statuses_are_harmless(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    wamid = message["whatsappMessageId"]
    delivered = status_webhook(number, status(wamid, "delivered", START + timedelta(seconds=2)))

    await deliver(runtime, delivered)
    first = await get_message(client, tenant, message["id"])
    assert first["status"] == "delivered"
    assert first["deliveredAt"] == iso(START + timedelta(seconds=2))
    # Meta retries and sends duplicates: the same webhook again, and again later, changes nothing.
    await deliver(runtime, delivered)
    clock.advance(timedelta(minutes=5))
    await deliver(runtime, delivered)
    assert await get_message(client, tenant, message["id"]) == first

    read = status_webhook(number, status(wamid, "read", START + timedelta(seconds=7)))
    await deliver(runtime, read)
    await deliver(runtime, read)
    final = await get_message(client, tenant, message["id"])
    assert final["status"] == "read"
    assert final["deliveredAt"] == iso(START + timedelta(seconds=2))
    assert final["readAt"] == iso(START + timedelta(seconds=7))


async def test_the_sandboxs_own_reports_after_meta_already_reported(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    await deliver(
        runtime, status_webhook(number, status(message["whatsappMessageId"], "read", START + timedelta(seconds=1)))
    )
    clock.advance(timedelta(seconds=10))
    await drain(runtime)  # the sandbox's delivered (1 s) and read (3 s) reports arrive late
    final = await get_message(client, tenant, message["id"])
    assert final["status"] == "read"
    assert final["readAt"] == iso(START + timedelta(seconds=1))


async def test_played_counts_as_read(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    await deliver(
        runtime, status_webhook(number, status(message["whatsappMessageId"], "played", START + timedelta(seconds=4)))
    )
    played = await get_message(client, tenant, message["id"])
    assert played["status"] == "read"
    assert played["readAt"] == iso(START + timedelta(seconds=4))


async def test_failed_shows_metas_error_on_the_message(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    wamid = message["whatsappMessageId"]

    await deliver(
        runtime, status_webhook(number, status(wamid, "failed", START + timedelta(seconds=3), errors=[ECOSYSTEM_ERROR]))
    )

    failed = await get_message(client, tenant, message["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == 131049
    assert "healthy ecosystem" in failed["error"]["message"]
    listed = (await client.get(f"{API}/messages", headers=tenant.headers)).json()["data"]
    assert next(m for m in listed if m["id"] == message["id"])["error"] == failed["error"]

    # A late delivered (or a duplicate sent) doesn't hide the failure.
    await deliver(runtime, status_webhook(number, status(wamid, "delivered", START + timedelta(seconds=1))))
    await deliver(runtime, status_webhook(number, status(wamid, "sent", START + timedelta(seconds=1))))
    assert await get_message(client, tenant, message["id"]) == failed


async def test_failed_after_delivered_is_shown(client, tenant, runtime, frozen_clock):
    """Multi-device: the same message can be delivered and then fail."""
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    wamid = message["whatsappMessageId"]
    await deliver(runtime, status_webhook(number, status(wamid, "delivered", START + timedelta(seconds=1))))
    error = {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}
    await deliver(
        runtime, status_webhook(number, status(wamid, "failed", START + timedelta(seconds=2), errors=[error]))
    )
    failed = await get_message(client, tenant, message["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == 131026
    assert failed["error"]["message"] == "Message undeliverable"
    assert "not use WhatsApp" in failed["error"]["explanation"]
    assert failed["deliveredAt"] == iso(START + timedelta(seconds=1))


async def test_a_long_error_from_meta_is_kept_without_breaking_the_webhook(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    details = "The media could not be downloaded: " + "x" * 3000
    error = {"code": 131053, "title": "Media upload error", "error_data": {"details": details}}

    await deliver(
        runtime,
        status_webhook(
            number, status(message["whatsappMessageId"], "failed", START + timedelta(seconds=1), errors=[error])
        ),
    )

    failed = await get_message(client, tenant, message["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == 131053
    assert failed["error"]["message"].startswith("The media could not be downloaded: xxx")
    assert len(failed["error"]["message"]) <= 1000


async def test_failed_without_error_details(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    await deliver(
        runtime, status_webhook(number, status(message["whatsappMessageId"], "failed", START + timedelta(seconds=1)))
    )
    failed = await get_message(client, tenant, message["id"])
    assert failed["status"] == "failed"


async def test_statuses_for_unknown_messages_or_numbers_change_nothing(client, tenant, other_tenant, runtime):
    message = await sent_message(client, tenant, runtime)
    ours = await phone_number_id(runtime, tenant)
    theirs = await phone_number_id(runtime, other_tenant)
    moment = datetime.now(UTC)

    unknown = await deliver(runtime, status_webhook(ours, status("wamid.unknown", "read", moment)))
    assert unknown.statuses == 1  # accepted and ignored, so Meta stops retrying
    # Another organization's number can't move our message, even with its WhatsApp id.
    await deliver(runtime, status_webhook(theirs, status(message["whatsappMessageId"], "read", moment)))
    unrouted = await deliver(runtime, status_webhook("999999999", status(message["whatsappMessageId"], "read", moment)))
    assert unrouted.unrouted == 1

    assert await get_message(client, tenant, message["id"]) == message


async def test_advance_status_moves_only_forward(client, tenant, runtime, frozen_clock):
    message = await sent_message(client, tenant, runtime)

    async def advance(name: str, seconds: int, **extra: Any) -> bool:
        async with runtime.database.transaction() as session:
            return await advance_status(
                session,
                organization_id=tenant.organization_id,
                message_id=message["id"],
                status=name,
                at=START + timedelta(seconds=seconds),
                **extra,
            )

    assert await advance("delivered", 1) is True
    assert await advance("delivered", 2) is False
    assert await advance("sent", 3) is False
    assert await advance("read", 4) is True
    assert await advance("failed", 5, error_code=131000, error_message="Something went wrong") is False
    assert await advance("read", 6) is False
    final = await get_message(client, tenant, message["id"])
    assert (final["status"], final["deliveredAt"], final["readAt"], final["error"]) == (
        "read",
        iso(START + timedelta(seconds=1)),
        iso(START + timedelta(seconds=4)),
        None,
    )

    # Another organization's id can't reach it.
    async with runtime.database.transaction() as session:
        moved = await advance_status(
            session, organization_id="org_other", message_id=message["id"], status="failed", at=START
        )
    assert moved is False


async def test_a_message_queued_in_the_window_fails_if_sent_after_it_closes(client, tenant, runtime, frozen_clock):
    response = await client.post(
        f"{API}/sandbox/inbound", json={"from": PHONE, "name": "Asha", "text": "Hi"}, headers=tenant.headers
    )
    assert response.status_code == 201
    clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    queued = await client.post(
        f"{API}/send", json={"to": PHONE, "type": "text", "text": "Just in time?"}, headers=tenant.headers
    )
    assert queued.status_code == 201, queued.text
    clock.advance(timedelta(seconds=1))

    await drain(runtime)

    failed = await get_message(client, tenant, queued.json()["id"])
    assert failed["status"] == "failed"
    assert failed["whatsappMessageId"] is None
    assert failed["error"]["code"] == 131047
    assert "template" in failed["error"]["explanation"]
    # Nothing more happens to it.
    clock.advance(timedelta(minutes=5))
    await drain(runtime)
    assert await get_message(client, tenant, queued.json()["id"]) == failed


@pytest.mark.parametrize("name", ["deleted", "", "warning"])
async def test_unknown_status_names_are_ignored(client, tenant, runtime, frozen_clock, name):
    message = await sent_message(client, tenant, runtime)
    number = await phone_number_id(runtime, tenant)
    await deliver(runtime, status_webhook(number, status(message["whatsappMessageId"], name, START)))
    assert await get_message(client, tenant, message["id"]) == message

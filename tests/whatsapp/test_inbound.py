"""The inbound pipeline over Meta's real webhook payloads: every message kept with its content."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kaanha.models import Message, WhatsAppConnection
from kaanha.whatsapp.inbound import process_payload
from tests.conftest import API

PAYLOADS = Path(__file__).parent / "payloads"
INBOUND = sorted(PAYLOADS.glob("inbound_*.json"))

# What each real payload must become: our message type and a piece of its content.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "inbound_audio": ("audio", {"voice": False}),
    "inbound_button_quick_reply": ("button", {}),
    "inbound_contacts": ("contact", {}),
    "inbound_document": ("document", {}),
    "inbound_image": ("image", {}),
    "inbound_interactive_button_reply": ("interactive", {}),
    "inbound_interactive_list_reply": ("interactive", {}),
    "inbound_interactive_nfm_reply_flow": ("interactive", {}),
    "inbound_location_named_place": ("location", {}),
    "inbound_order": ("order", {}),
    "inbound_reaction": ("reaction", {"removed": False}),
    "inbound_reaction_removed_empty_emoji": ("reaction", {"removed": True}),
    "inbound_revoke_deleted": ("revoke", {}),
    "inbound_sticker_static": ("sticker", {}),
    "inbound_system_user_changed_number": ("system", {}),
    "inbound_text": ("text", {"text": "Does it come in another color?"}),
    "inbound_text_ctwa_ad_referral": ("text", {}),
    "inbound_text_forwarded": ("text", {"forwarded": True}),
    "inbound_text_referred_product": ("text", {}),
    "inbound_text_reply_context": ("text", {}),
    "inbound_unsupported": ("unsupported", {"originalType": "unsupported"}),
    "inbound_video_forwarded_caption": ("video", {"forwarded": True}),
}


async def _routed_to(runtime, tenant, payload: dict[str, Any]) -> dict[str, Any]:
    async with runtime.database.sessions() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
        assert connection is not None
        phone_number_id = connection.phone_number_id
    routed = copy.deepcopy(payload)
    for entry in routed["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return routed


async def _count(runtime) -> int:
    async with runtime.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


def test_every_payload_file_has_an_expectation():
    assert {path.stem for path in INBOUND} == set(EXPECTED)


@pytest.mark.parametrize("path", INBOUND, ids=lambda path: path.stem)
async def test_real_payload_becomes_a_message(path, runtime, tenant):
    payload = await _routed_to(runtime, tenant, json.loads(path.read_text()))
    raw = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, payload)
    assert len(summary.messages) == 1
    message = summary.messages[0]
    message_type, content = EXPECTED[path.stem]
    assert message.type == message_type
    assert message.direction == "inbound"
    assert message.status == "received"
    assert message.whatsapp_message_id == raw["id"]
    for key, value in content.items():
        assert message.content[key] == value
    if raw["type"] in ("image", "video", "audio", "document", "sticker"):
        assert message.content["providerMediaId"] == raw[raw["type"]]["id"]
        assert message.content["mimeType"] == raw[raw["type"]]["mime_type"]
    if raw.get("referral"):
        assert message.content["referral"]["source_type"] == raw["referral"]["source_type"]

    # Meta retries and duplicates webhooks: the same payload again stores nothing new.
    async with runtime.database.transaction() as session:
        again = await process_payload(session, payload)
    assert again.duplicates == 1
    assert await _count(runtime) == 1


async def test_unknown_fields_and_types_are_kept_not_dropped(runtime, tenant):
    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    raw = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    raw.update(type="hologram", hologram={"beam": 3}, brand_new_field={"x": 1})
    routed = await _routed_to(runtime, tenant, payload)
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, routed)
    (message,) = summary.messages
    assert message.type == "unsupported"
    assert message.content["originalType"] == "hologram"


async def test_a_payload_for_an_unknown_number_is_ignored(runtime, tenant):
    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, payload)
    assert summary.unrouted == 1
    assert await _count(runtime) == 0


async def test_sandbox_media_message_is_served_from_our_store(client, tenant):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
    upload = await client.post(f"{API}/media", headers=tenant.headers, files={"file": ("photo.png", png)})
    media_id = upload.json()["mediaId"]
    response = await client.post(
        f"{API}/sandbox/inbound",
        headers=tenant.headers,
        json={"from": "+919876543210", "type": "image", "mediaId": media_id, "caption": "my receipt"},
    )
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert content["mediaId"] == media_id
    assert content["caption"] == "my receipt"
    download = await client.get(f"/api/media/{content['mediaId']}", headers=tenant.headers)
    assert download.content == png


async def _receive(runtime, tenant, raw_message: dict[str, Any]) -> None:
    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    payload["entry"][0]["changes"][0]["value"]["messages"] = [raw_message]
    routed = await _routed_to(runtime, tenant, payload)
    async with runtime.database.transaction() as session:
        await process_payload(session, routed)


async def test_a_deleted_message_shows_as_deleted_and_an_edit_replaces_the_text(client, runtime, tenant):
    sender = "16505551234"
    for wamid, text in (("wamid.first", "See you at 5"), ("wamid.second", "Bring the invoice")):
        await _receive(
            runtime,
            tenant,
            {"from": sender, "id": wamid, "timestamp": "1750000000", "type": "text", "text": {"body": text}},
        )
    await _receive(
        runtime,
        tenant,
        {
            "from": sender,
            "id": "wamid.revoke",
            "timestamp": "1750000060",
            "type": "revoke",
            "revoke": {"original_message_id": "wamid.first"},
        },
    )
    await _receive(
        runtime,
        tenant,
        {
            "from": sender,
            "id": "wamid.edit",
            "timestamp": "1750000090",
            "type": "edit",
            "edit": {
                "original_message_id": "wamid.second",
                "message": {"type": "text", "text": {"body": "Bring the invoice and the receipt"}},
            },
        },
    )
    listed = (await client.get(f"{API}/messages", headers=tenant.headers, params={"limit": 10})).json()["data"]
    by_wamid = {message["whatsappMessageId"]: message for message in listed}
    assert by_wamid["wamid.first"]["content"]["deleted"] is True
    edited = by_wamid["wamid.second"]["content"]
    assert edited["text"] == "Bring the invoice and the receipt"
    assert edited["originalText"] == "Bring the invoice"
    assert edited["edited"] is True
    # The revoke and the edit are kept too, pointing at the message they changed.
    assert by_wamid["wamid.revoke"]["content"]["messageId"] == by_wamid["wamid.first"]["id"]
    assert by_wamid["wamid.edit"]["content"]["messageId"] == by_wamid["wamid.second"]["id"]


@pytest.mark.parametrize(
    "odd",
    [
        {"context": "not an object"},
        {"id": "wamid." + "x" * 300},
        {"from": ""},
        {"text": "not an object"},
        {"type": {"nested": True}},
        {"timestamp": "yesterday"},
    ],
    ids=["context", "long-id", "no-sender", "text", "type", "timestamp"],
)
async def test_an_odd_message_does_not_cost_the_rest_of_its_batch(runtime, tenant, odd):
    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    value["messages"] = [{**good, "id": "wamid.odd", **odd}, {**good, "id": "wamid.good"}]
    value["contacts"] = [{"profile": "not an object", "wa_id": good["from"]}]
    routed = await _routed_to(runtime, tenant, payload)
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, routed)
    assert "wamid.good" in {message.whatsapp_message_id for message in summary.messages}


async def test_odd_status_fields_are_ignored_not_fatal(runtime, tenant):
    payload = json.loads((PAYLOADS / "status_failed.json").read_text())
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["errors"] = [{"code": 2**40, "error_data": "not an object", "message": {"odd": 1}}]
    routed = await _routed_to(runtime, tenant, payload)
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, routed)
    assert summary.statuses == 1


async def test_a_busy_database_retries_the_batch_instead_of_dropping_a_message(runtime, tenant, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from kaanha.whatsapp import inbound

    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    value["messages"] = [{**good, "id": "wamid.first"}, {**good, "id": "wamid.second"}]
    routed = await _routed_to(runtime, tenant, payload)
    record = inbound.record_inbound

    async def locked_for_the_second(session, **fields):
        if fields["whatsapp_message_id"] == "wamid.second":
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return await record(session, **fields)

    monkeypatch.setattr(inbound, "record_inbound", locked_for_the_second)
    with pytest.raises(OperationalError):
        async with runtime.database.transaction() as session:
            await process_payload(session, routed)
    assert await _count(runtime) == 0  # nothing half-applied: the job runs the whole payload again

    monkeypatch.setattr(inbound, "record_inbound", record)
    async with runtime.database.transaction() as session:
        summary = await process_payload(session, routed)
    assert {message.whatsapp_message_id for message in summary.messages} == {"wamid.first", "wamid.second"}


async def test_concurrent_batches_from_the_same_customers_store_every_message_once(runtime, tenant):
    import asyncio
    import random

    from kaanha.database import is_transient

    template = json.loads((PAYLOADS / "inbound_text.json").read_text())
    good = template["entry"][0]["changes"][0]["value"]["messages"][0]
    senders = [f"9198765{n:05d}" for n in range(30)]
    conflicts = 0

    async def deliver(batch: int) -> None:
        nonlocal conflicts
        payload = copy.deepcopy(template)
        value = payload["entry"][0]["changes"][0]["value"]
        shuffled = random.Random(batch).sample(senders, len(senders))  # each batch names them in its own order
        value["messages"] = [{**good, "from": sender, "id": f"wamid.{batch}.{sender}"} for sender in shuffled]
        value["contacts"] = [{"profile": {"name": "Customer"}, "wa_id": sender} for sender in shuffled]
        routed = await _routed_to(runtime, tenant, payload)
        for _ in range(20):  # what the job queue does with a transient failure
            try:
                async with runtime.database.transaction() as session:
                    await process_payload(session, routed)
                return
            except Exception as error:
                if not is_transient(error):
                    raise
                conflicts += 1
                await asyncio.sleep(0.05)
        raise AssertionError(f"batch {batch} never got through")

    await asyncio.gather(*(deliver(batch) for batch in range(8)))
    assert await _count(runtime) == 8 * len(senders)
    if runtime.database.dialect == "postgresql":
        assert conflicts == 0  # batches lock contacts and conversations in one order: no deadlocks


def test_a_big_batch_is_split_into_parts_that_keep_every_item_once_in_order():
    from kaanha.whatsapp.inbound import split_payload

    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    value["messages"] = [{**good, "id": f"wamid.{n}"} for n in range(25)]
    value["statuses"] = [{"id": f"wamid.out.{n}", "status": "delivered"} for n in range(7)]

    parts = split_payload(payload, items_per_part=10)

    assert len(parts) == 4
    values = [part["entry"][0]["changes"][0]["value"] for part in parts]
    assert [m["id"] for v in values for m in v["messages"]] == [f"wamid.{n}" for n in range(25)]
    assert [s["id"] for v in values for s in v["statuses"]] == [f"wamid.out.{n}" for n in range(7)]
    assert all(len(v["messages"]) + len(v["statuses"]) <= 10 for v in values)
    # Each part keeps what routes and names it.
    assert all(v["metadata"] == value["metadata"] and v["contacts"] == value["contacts"] for v in values)
    assert split_payload(json.loads((PAYLOADS / "inbound_text.json").read_text()), items_per_part=10) == [
        json.loads((PAYLOADS / "inbound_text.json").read_text())
    ]


async def test_a_batch_applied_again_after_a_crash_part_way_stores_each_message_once(runtime, tenant):
    from kaanha.models import Conversation
    from kaanha.whatsapp.inbound import split_payload

    payload = json.loads((PAYLOADS / "inbound_text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    value["messages"] = [{**good, "id": f"wamid.{n}"} for n in range(25)]
    routed = await _routed_to(runtime, tenant, payload)
    first, *_ = split_payload(routed, items_per_part=10)
    async with runtime.database.transaction() as session:  # the worker died after its first part
        await process_payload(session, first)
    for part in split_payload(routed, items_per_part=10):  # the job runs again from the start
        async with runtime.database.transaction() as session:
            await process_payload(session, part)

    assert await _count(runtime) == 25
    async with runtime.database.sessions() as session:
        [conversation] = list(await session.scalars(select(Conversation)))
    assert conversation.unread_count == 25

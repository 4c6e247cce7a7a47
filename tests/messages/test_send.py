"""POST /send: every WhatsApp type, its limits, the 24-hour window, rate limits and idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from kaanha.app import create_app
from kaanha.config import RateLimitSettings
from kaanha.kit.clock import clock
from kaanha.models import Contact, Job
from kaanha.runtime import Runtime
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import inbound

PHONE = "+919876543210"
OTHER_PHONE = "+919812345678"

# The smallest files `filetype` recognizes: the magic bytes, padded.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"\x00" * 64
MP3 = b"ID3\x03\x00" + b"\x00" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64

MESSAGE_FIELDS = {
    "id",
    "conversationId",
    "contactId",
    "direction",
    "type",
    "status",
    "content",
    "whatsappMessageId",
    "error",
    "createdAt",
    "sentAt",
    "deliveredAt",
    "readAt",
}


async def upload(client: httpx.AsyncClient, tenant: Tenant, data: bytes, filename: str, mime: str) -> str:
    response = await client.post(f"{API}/media", files={"file": (filename, data, mime)}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    media_id: str = response.json()["mediaId"]
    return media_id


async def send(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(f"{API}/send", json=body, headers={**tenant.headers, **(headers or {})})


async def get_message(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


async def message_total(client: httpx.AsyncClient, tenant: Tenant) -> int:
    response = await client.get(f"{API}/messages", headers=tenant.headers)
    assert response.status_code == 200, response.text
    total: int = response.json()["pagination"]["total"]
    return total


async def row_counts(runtime: Runtime) -> tuple[int, int]:
    """(contacts, jobs) in the whole database."""
    async with runtime.database.sessions() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return int(contacts or 0), int(jobs or 0)


async def send_jobs(runtime: Runtime) -> int:
    async with runtime.database.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "messages.send"))
    return int(count or 0)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "code"}
    assert isinstance(body["error"], str)
    assert body["error"]
    if code is not None:
        assert body["code"] == code, body
    return body


# --- every type, from queued to read -------------------------------------------------------------------------

BUTTONS = {
    "type": "button",
    "body": {"text": "Shall we deliver tomorrow?"},
    "footer": {"text": "Kaanha"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "no", "title": "No"}},
            {"type": "reply", "reply": {"id": "later", "title": "Later"}},
        ]
    },
}
LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "What would you like?"},
    "action": {
        "button": "View options",
        "sections": [
            {"title": "Coffee", "rows": [{"id": "esp", "title": "Espresso", "description": "Short and strong"}]},
            {"title": "Tea", "rows": [{"id": "chai", "title": "Masala chai"}, {"id": "green", "title": "Green"}]},
        ],
    },
}
CTA_URL = {
    "type": "cta_url",
    "body": {"text": "Track your order"},
    "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://example.com/track/1042"}},
}
CARD = {
    "name": {"formatted_name": "Ravi Kumar", "first_name": "Ravi", "last_name": "Kumar"},
    "phones": [{"phone": "+919811111111", "type": "CELL", "wa_id": "919811111111"}],
    "emails": [{"email": "ravi@example.com", "type": "WORK"}],
    "org": {"company": "Acme"},
}


async def _text(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    body = {"type": "text", "text": "Hello! How can I help you today?"}
    return body, {"text": "Hello! How can I help you today?"}


async def _image(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    media_id = await upload(client, tenant, PNG, "photo.png", "image/png")
    body = {"type": "image", "mediaId": media_id, "caption": "Your receipt"}
    return body, {"mediaId": media_id, "caption": "Your receipt", "mimeType": "image/png"}


async def _document(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    media_id = await upload(client, tenant, PDF, "invoice.pdf", "application/pdf")
    body = {"type": "document", "mediaId": media_id, "caption": "Invoice #1042"}
    # The upload's own filename goes along when the send gives none.
    return body, {
        "mediaId": media_id,
        "caption": "Invoice #1042",
        "filename": "invoice.pdf",
        "mimeType": "application/pdf",
    }


async def _document_url(
    client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    body = {"type": "document", "mediaUrl": "https://example.com/files/menu.pdf", "filename": "menu.pdf"}
    return body, {"mediaUrl": "https://example.com/files/menu.pdf", "filename": "menu.pdf"}


async def _audio(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    media_id = await upload(client, tenant, MP3, "note.mp3", "audio/mpeg")
    return {"type": "audio", "mediaId": media_id}, {"mediaId": media_id, "mimeType": "audio/mpeg"}


async def _video(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    media_id = await upload(client, tenant, MP4, "clip.mp4", "video/mp4")
    body = {"type": "video", "mediaId": media_id, "caption": "How to assemble"}
    return body, {"mediaId": media_id, "caption": "How to assemble", "mimeType": "video/mp4"}


async def _template(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    body = {"type": "template", "templateName": "hello_world", "language": "en_US", "components": []}
    return body, {"templateName": "hello_world", "language": "en_US", "components": [], "category": "UTILITY"}


async def _template_params(
    client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#7"}]}]
    body = {"type": "template", "templateName": "order_update", "language": "en_US", "components": components}
    return body, {
        "templateName": "order_update",
        "language": "en_US",
        "components": components,
        "preview": "Hi Asha, your order #7 is on its way.",
    }


async def _button(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return {"type": "interactive", "interactive": BUTTONS}, {"interactive": BUTTONS}


async def _list(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return {"type": "interactive", "interactive": LIST}, {"interactive": LIST}


async def _cta(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return {"type": "interactive", "interactive": CTA_URL}, {"interactive": CTA_URL}


async def _location(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    place = {"latitude": 12.9716, "longitude": 77.5946, "name": "Acme Store", "address": "MG Road, Bengaluru"}
    return {"type": "location", **place}, place


async def _contact(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return {"type": "contact", "contacts": [CARD]}, {"contacts": [CARD]}


async def _reaction(client: httpx.AsyncClient, tenant: Tenant, received: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    body = {"type": "reaction", "messageId": received["id"], "emoji": "👍"}
    return body, {"messageId": received["id"], "emoji": "👍", "whatsappMessageId": received["whatsappMessageId"]}


CASES = {
    "text": _text,
    "image": _image,
    "document": _document,
    "document_by_url": _document_url,
    "audio": _audio,
    "video": _video,
    "template": _template,
    "template_with_parameters": _template_params,
    "interactive_button": _button,
    "interactive_list": _list,
    "interactive_cta_url": _cta,
    "location": _location,
    "contact": _contact,
    "reaction": _reaction,
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_type_is_queued_then_sent_delivered_and_read(client, tenant, runtime, frozen_clock, case):
    received = await inbound(client, tenant)
    body, expected_content = await CASES[case](client, tenant, received)

    response = await send(client, tenant, {"to": PHONE, **body})

    assert response.status_code == 201, response.text
    message = response.json()
    assert set(message) >= MESSAGE_FIELDS
    assert all("_" not in key for key in message), "fields are camelCase"
    assert message["status"] == "queued"
    assert message["direction"] == "outbound"
    assert message["type"] == body["type"]
    assert message["conversationId"] == received["conversationId"]
    assert message["contactId"] == received["contactId"]
    assert message["whatsappMessageId"] is None
    assert message["error"] is None
    assert message["createdAt"] == "2026-11-24T10:00:00Z"
    assert message["sentAt"] is None
    assert message["deliveredAt"] is None
    assert message["readAt"] is None
    for key, value in expected_content.items():
        assert message["content"][key] == value, key
    assert await get_message(client, tenant, message["id"]) == message

    await drain(runtime)
    sent = await get_message(client, tenant, message["id"])
    assert sent["status"] == "sent"
    assert sent["whatsappMessageId"].startswith("wamid.")
    assert sent["sentAt"] == "2026-11-24T10:00:00Z"
    assert sent["deliveredAt"] is None
    assert sent["content"] == message["content"]

    clock.advance(timedelta(seconds=1))
    await drain(runtime)
    delivered = await get_message(client, tenant, message["id"])
    assert delivered["status"] == "delivered"
    assert delivered["deliveredAt"] == "2026-11-24T10:00:01Z"
    assert delivered["readAt"] is None

    clock.advance(timedelta(seconds=2))
    await drain(runtime)
    read = await get_message(client, tenant, message["id"])
    assert read["status"] == "read"
    assert read["whatsappMessageId"] == sent["whatsappMessageId"]
    assert (read["sentAt"], read["deliveredAt"], read["readAt"]) == (
        "2026-11-24T10:00:00Z",
        "2026-11-24T10:00:01Z",
        "2026-11-24T10:00:03Z",
    )


async def test_limits_themselves_are_allowed(client, tenant, runtime):
    await inbound(client, tenant)
    longest = await send(client, tenant, {"to": PHONE, "type": "text", "text": "x" * 4096})
    assert longest.status_code == 201, longest.text
    assert len(longest.json()["content"]["text"]) == 4096
    media_id = await upload(client, tenant, JPEG, "photo.jpg", "image/jpeg")
    caption = await send(client, tenant, {"to": PHONE, "type": "image", "mediaId": media_id, "caption": "c" * 1024})
    assert caption.status_code == 201, caption.text
    rows = [{"id": f"r{i}", "title": f"Row {i}"} for i in range(10)]
    ten_rows = {
        "type": "list",
        "body": {"text": "Pick"},
        "action": {
            "button": "Options",
            "sections": [{"title": "A", "rows": rows[:5]}, {"title": "B", "rows": rows[5:]}],
        },
    }
    listed = await send(client, tenant, {"to": PHONE, "type": "interactive", "interactive": ten_rows})
    assert listed.status_code == 201, listed.text
    corner = await send(
        client, tenant, {"to": PHONE, "type": "location", "latitude": -90, "longitude": 180, "name": "Pole"}
    )
    assert corner.status_code == 201, corner.text


async def test_a_reply_quotes_the_customers_message(client, tenant, runtime):
    received = await inbound(client, tenant)
    by_id = await send(client, tenant, {"to": PHONE, "type": "text", "text": "Sure", "replyTo": received["id"]})
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["replyTo"] == received["id"]
    # Clients may hold WhatsApp's id instead of ours.
    by_wamid = await send(
        client, tenant, {"to": PHONE, "type": "text", "text": "Sure", "replyTo": received["whatsappMessageId"]}
    )
    assert by_wamid.status_code == 201, by_wamid.text
    assert by_wamid.json()["replyTo"] == received["id"]


async def test_an_empty_emoji_removes_a_reaction(client, tenant, runtime):
    received = await inbound(client, tenant)
    response = await send(client, tenant, {"to": PHONE, "type": "reaction", "messageId": received["id"], "emoji": ""})
    assert response.status_code == 201, response.text
    assert response.json()["content"]["emoji"] == ""


async def test_a_phone_without_country_code_reaches_the_same_contact(client, tenant, runtime):
    received = await inbound(client, tenant)
    response = await send(client, tenant, {"to": "098765 43210", "type": "text", "text": "Hello"})
    assert response.status_code == 201, response.text
    assert response.json()["contactId"] == received["contactId"]


# --- refusals: each is a 400/404 that writes nothing ---------------------------------------------------------


def _rows(count: int) -> list[dict[str, str]]:
    return [{"id": f"r{i}", "title": f"Row {i}"} for i in range(count)]


INVALID: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "text_missing": ({"type": "text"}, 400, "invalid_message"),
    "text_empty": ({"type": "text", "text": "   "}, 400, "invalid_message"),
    "text_too_long": ({"type": "text", "text": "x" * 4097}, 400, "invalid_message"),
    "caption_too_long": (
        {"type": "image", "mediaUrl": "https://example.com/a.jpg", "caption": "c" * 1025},
        400,
        "invalid_message",
    ),
    "four_reply_buttons": (
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Pick"},
                "action": {
                    "buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]
                },
            },
        },
        400,
        "invalid_message",
    ),
    "eleven_list_rows": (
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {"button": "Options", "sections": [{"title": "All", "rows": _rows(11)}]},
            },
        },
        400,
        "invalid_message",
    ),
    "eleven_list_rows_across_sections": (
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {
                    "button": "Options",
                    "sections": [{"title": "A", "rows": _rows(6)}, {"title": "B", "rows": _rows(5)}],
                },
            },
        },
        400,
        "invalid_message",
    ),
    "reply_button_title_too_long": (
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Pick"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "t" * 21}}]},
            },
        },
        400,
        "invalid_message",
    ),
    "reply_button_ids_twice": (
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Pick"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": t}} for t in ("A", "B")]},
            },
        },
        400,
        "invalid_message",
    ),
    "interactive_body_too_long": (
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "b" * 1025},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
            },
        },
        400,
        "invalid_message",
    ),
    "list_row_title_too_long": (
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {"button": "Options", "sections": [{"title": "A", "rows": [{"id": "r", "title": "t" * 25}]}]},
            },
        },
        400,
        "invalid_message",
    ),
    "cta_url_without_url": (
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Track"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Track"}},
            },
        },
        400,
        "invalid_message",
    ),
    "interactive_unknown_kind": (
        {"type": "interactive", "interactive": {"type": "carousel", "body": {"text": "x"}, "action": {}}},
        400,
        "invalid_message",
    ),
    "interactive_missing": ({"type": "interactive"}, 400, "invalid_message"),
    "latitude_91": ({"type": "location", "latitude": 91, "longitude": 77.5, "name": "X"}, 400, "invalid_message"),
    "longitude_181": ({"type": "location", "latitude": 12.9, "longitude": 181, "name": "X"}, 400, "invalid_message"),
    "location_without_name": ({"type": "location", "latitude": 12.9, "longitude": 77.5}, 400, "invalid_message"),
    "image_without_media": ({"type": "image", "caption": "hi"}, 400, "invalid_message"),
    "image_with_url_and_id": (
        {"type": "image", "mediaUrl": "https://example.com/a.jpg", "mediaId": "med_x"},
        400,
        "invalid_message",
    ),
    "document_url_without_filename": (
        {"type": "document", "mediaUrl": "https://example.com/menu.pdf"},
        400,
        "invalid_message",
    ),
    "caption_on_audio": (
        {"type": "audio", "mediaUrl": "https://example.com/a.mp3", "caption": "listen"},
        400,
        "invalid_message",
    ),
    "location_fields_on_text": ({"type": "text", "text": "hi", "latitude": 1.0}, 400, "invalid_message"),
    "text_on_image": ({"type": "image", "mediaUrl": "https://example.com/a.jpg", "text": "hi"}, 400, "invalid_message"),
    "contact_without_cards": ({"type": "contact", "contacts": []}, 400, "invalid_message"),
    "contact_card_without_name": ({"type": "contact", "contacts": [{"phones": []}]}, 400, "invalid_message"),
    "reaction_without_emoji": ({"type": "reaction", "messageId": "msg_x"}, 400, "invalid_message"),
    "reaction_with_words": ({"type": "reaction", "messageId": "msg_x", "emoji": "ok"}, 400, "invalid_message"),
    "unknown_type": ({"type": "sticker", "mediaUrl": "https://example.com/a.webp"}, 400, "validation_error"),
    "unknown_field": ({"type": "text", "text": "hi", "colour": "red"}, 400, "validation_error"),
    "template_unknown": (
        {"type": "template", "templateName": "no_such_template", "language": "en_US"},
        404,
        "template_not_found",
    ),
    "template_wrong_language": (
        {"type": "template", "templateName": "hello_world", "language": "fr"},
        404,
        "template_not_found",
    ),
    "template_parameters_for_hello_world": (
        {
            "type": "template",
            "templateName": "hello_world",
            "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Asha"}]}],
        },
        400,
        "template_parameters_mismatch",
    ),
    "template_order_update_one_parameter": (
        {
            "type": "template",
            "templateName": "order_update",
            "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Asha"}]}],
        },
        400,
        "template_parameters_mismatch",
    ),
    "template_order_update_no_parameters": (
        {"type": "template", "templateName": "order_update", "language": "en_US"},
        400,
        "template_parameters_mismatch",
    ),
    "template_without_name": ({"type": "template", "language": "en_US"}, 400, "invalid_message"),
    "media_id_unknown": ({"type": "image", "mediaId": "med_doesnotexist"}, 404, "media_not_found"),
    "reply_to_unknown": ({"type": "text", "text": "hi", "replyTo": "msg_doesnotexist"}, 404, "message_not_found"),
    "reaction_target_unknown": (
        {"type": "reaction", "messageId": "msg_doesnotexist", "emoji": "👍"},
        404,
        "message_not_found",
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_an_invalid_send_is_refused_and_writes_nothing(client, tenant, runtime, case):
    await inbound(client, tenant)
    before = await message_total(client, tenant), await row_counts(runtime)
    body, status, code = INVALID[case]

    response = await send(client, tenant, {"to": PHONE, **body})

    assert_error(response, status, code)
    assert (await message_total(client, tenant), await row_counts(runtime)) == before


@pytest.mark.parametrize("to", ["12345", "not-a-phone", "+91 98765", "", "+999123456789"])
async def test_a_bad_phone_is_refused_and_creates_no_contact(client, tenant, runtime, to):
    before = await row_counts(runtime)
    response = await send(
        client, tenant, {"to": to, "type": "template", "templateName": "hello_world", "language": "en_US"}
    )
    assert_error(response, 400)
    assert response.json()["code"] in ("invalid_phone_number", "validation_error")
    assert await row_counts(runtime) == before
    assert await message_total(client, tenant) == 0


async def test_missing_to_or_type_or_body_is_a_400(client, tenant, runtime):
    assert_error(await send(client, tenant, {"type": "text", "text": "hi"}), 400, "validation_error")
    assert_error(await send(client, tenant, {"to": PHONE, "text": "hi"}), 400, "validation_error")
    response = await client.post(
        f"{API}/send", content=b"{not json", headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")
    assert await message_total(client, tenant) == 0


async def test_a_reaction_to_another_contacts_message_is_refused(client, tenant, runtime):
    theirs = await inbound(client, tenant, phone=OTHER_PHONE, name="Ravi", text="Hello")
    await inbound(client, tenant)
    before = await message_total(client, tenant), await row_counts(runtime)

    response = await send(client, tenant, {"to": PHONE, "type": "reaction", "messageId": theirs["id"], "emoji": "👍"})

    assert_error(response, 400)
    assert (await message_total(client, tenant), await row_counts(runtime)) == before
    # The reaction goes through to the contact whose message it is.
    own = await send(client, tenant, {"to": OTHER_PHONE, "type": "reaction", "messageId": theirs["id"], "emoji": "👍"})
    assert own.status_code == 201, own.text


async def test_a_reply_quoting_another_contacts_message_is_refused(client, tenant, runtime):
    theirs = await inbound(client, tenant, phone=OTHER_PHONE, name="Ravi", text="Hello")
    await inbound(client, tenant)
    before = await message_total(client, tenant)
    response = await send(client, tenant, {"to": PHONE, "type": "text", "text": "hi", "replyTo": theirs["id"]})
    assert_error(response, 400)
    assert await message_total(client, tenant) == before


async def test_a_reaction_to_another_organizations_message_is_not_found(client, tenant, other_tenant, runtime):
    theirs = await inbound(client, other_tenant)
    await inbound(client, tenant)
    before = await message_total(client, tenant)
    for target in (theirs["id"], theirs["whatsappMessageId"]):
        response = await send(client, tenant, {"to": PHONE, "type": "reaction", "messageId": target, "emoji": "👍"})
        assert_error(response, 404, "message_not_found")
    assert await message_total(client, tenant) == before


async def test_media_of_another_organization_is_not_found(client, tenant, other_tenant, runtime):
    theirs = await upload(client, other_tenant, PNG, "secret.png", "image/png")
    await inbound(client, tenant)
    before = await message_total(client, tenant), await row_counts(runtime)

    response = await send(client, tenant, {"to": PHONE, "type": "image", "mediaId": theirs})

    body = assert_error(response, 404)
    assert theirs in body["error"]
    assert (await message_total(client, tenant), await row_counts(runtime)) == before


async def test_media_of_the_wrong_kind_for_the_type_is_refused(client, tenant, runtime):
    await inbound(client, tenant)
    pdf = await upload(client, tenant, PDF, "invoice.pdf", "application/pdf")
    before = await message_total(client, tenant)
    response = await send(client, tenant, {"to": PHONE, "type": "image", "mediaId": pdf})
    assert_error(response, 400, "media_not_sendable")
    assert await message_total(client, tenant) == before


@pytest_asyncio.fixture
async def loopback_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server on 127.0.0.1 that records every connection made to it."""
    connections: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x.jpg",
        "http://127.1.2.3:{port}/x.jpg",
        "http://localhost:{port}/x.jpg",
        "http://LOCALHOST.:{port}/x.jpg",
        "http://[::ffff:127.0.0.1]:{port}/x.jpg",
        "http://0.0.0.0:{port}/x.jpg",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{port}/x.jpg",
    ],
)
async def test_a_private_media_url_is_refused_without_connecting(client, tenant, runtime, loopback_listener, url):
    port, connections = loopback_listener
    await inbound(client, tenant)
    before = await message_total(client, tenant), await row_counts(runtime)

    response = await send(client, tenant, {"to": PHONE, "type": "image", "mediaUrl": url.format(port=port)})

    assert_error(response, 400, "unsafe_url")
    await drain(runtime)
    await asyncio.sleep(0.05)
    assert connections == []
    assert (await message_total(client, tenant), await row_counts(runtime)) == before


# --- the 24-hour customer service window ---------------------------------------------------------------------


async def test_the_customer_service_window(client, tenant, runtime, frozen_clock):
    text = {"to": PHONE, "type": "text", "text": "Following up on your order"}
    hello = {"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}

    never_wrote = await send(client, tenant, text)
    body = assert_error(never_wrote, 400, "outside_customer_service_window")
    assert "template" in body["error"]
    assert await message_total(client, tenant) == 0
    assert (await row_counts(runtime))[0] == 0

    template = await send(client, tenant, hello)
    assert template.status_code == 201, template.text
    # Our own template does not open the window.
    assert_error(await send(client, tenant, text), 400, "outside_customer_service_window")

    await inbound(client, tenant)
    assert (await send(client, tenant, text)).status_code == 201

    clock.advance(timedelta(hours=23, minutes=59))
    assert (await send(client, tenant, text)).status_code == 201
    clock.advance(timedelta(seconds=59))
    assert (await send(client, tenant, text)).status_code == 201

    clock.advance(timedelta(seconds=1))  # 24 h after the customer's message
    before = await message_total(client, tenant)
    late = await send(client, tenant, text)
    body = assert_error(late, 400, "outside_customer_service_window")
    assert "template" in body["error"]
    assert "24" in body["error"]
    assert await message_total(client, tenant) == before
    assert (await send(client, tenant, hello)).status_code == 201

    # A new message from the customer opens it again.
    await inbound(client, tenant, text="Any news?")
    assert (await send(client, tenant, text)).status_code == 201


@pytest.mark.parametrize("message_type", ["image", "interactive", "location", "contact"])
async def test_every_free_form_type_needs_the_window(client, tenant, runtime, message_type):
    bodies: dict[str, dict[str, Any]] = {
        "image": {"mediaUrl": "https://example.com/a.jpg"},
        "interactive": {"interactive": BUTTONS},
        "location": {"latitude": 1.0, "longitude": 2.0, "name": "Here"},
        "contact": {"contacts": [CARD]},
    }
    response = await send(client, tenant, {"to": PHONE, "type": message_type, **bodies[message_type]})
    assert_error(response, 400, "outside_customer_service_window")
    assert await message_total(client, tenant) == 0


# --- per-recipient rate limit ----------------------------------------------------------------------------------


async def test_the_per_recipient_rate_limit(settings, database, runtime):
    limited = Runtime.from_settings(
        settings.model_copy(update={"rate_limits": RateLimitSettings(api="100000/minute", per_recipient="3/hour")}),
        database=database,
    )
    app = create_app(limited.settings, runtime=limited)
    tenant = await make_tenant(limited, "Limited")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await inbound(client, tenant)
        for n in range(3):
            ok = await send(
                client, tenant, {"to": PHONE, "type": "text", "text": f"Update {n}"}, {"Idempotency-Key": f"u{n}"}
            )
            assert ok.status_code == 201, ok.text
        before = await message_total(client, tenant), await row_counts(limited)

        refused = await send(client, tenant, {"to": PHONE, "type": "text", "text": "One too many"})

        body = assert_error(refused, 429, "rate_limited")
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert PHONE in body["error"]
        assert (await message_total(client, tenant), await row_counts(limited)) == before
        # A retry of an earlier send replays it: it is not a new message, so the limit doesn't apply.
        replay = await send(
            client, tenant, {"to": PHONE, "type": "text", "text": "Update 2"}, {"Idempotency-Key": "u2"}
        )
        assert replay.status_code == 201, replay.text
        assert replay.json() == ok.json()
        # The same number written differently is the same recipient.
        assert_error(await send(client, tenant, {"to": "09876543210", "type": "text", "text": "x"}), 429)

        other = await send(
            client, tenant, {"to": OTHER_PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}
        )
        assert other.status_code == 201, other.text
        # The limit is per organization: another one may still write to the same customer.
        neighbour = await make_tenant(limited, "Neighbour")
        theirs = await send(
            client, neighbour, {"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}
        )
        assert theirs.status_code == 201, theirs.text


# --- Idempotency-Key ---------------------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_first_send(client, tenant, runtime):
    await inbound(client, tenant)
    body = {"to": PHONE, "type": "text", "text": "Your order shipped"}
    key = {"Idempotency-Key": "order-1042-shipped"}

    first = await send(client, tenant, body, key)
    again = await send(client, tenant, body, key)
    # The same JSON with its keys in another order is the same request.
    reordered = await client.post(
        f"{API}/send",
        content=b'{"text": "Your order shipped", "type": "text", "to": "+919876543210"}',
        headers={**tenant.headers, **key, "Content-Type": "application/json"},
    )

    assert first.status_code == again.status_code == reordered.status_code == 201
    assert again.json() == first.json() == reordered.json()
    assert await message_total(client, tenant) == 2  # the customer's message and ours
    assert await send_jobs(runtime) == 1

    changed = await send(client, tenant, {**body, "text": "Something else"}, key)
    assert_error(changed, 409)
    assert await message_total(client, tenant) == 2
    assert await send_jobs(runtime) == 1

    # Keys belong to one organization, and a new key is a new message.
    assert (await send(client, tenant, body, {"Idempotency-Key": "another"})).status_code == 201
    assert await send_jobs(runtime) == 2


async def test_an_unusable_idempotency_key_is_a_400(client, tenant, runtime):
    await inbound(client, tenant)
    response = await send(client, tenant, {"to": PHONE, "type": "text", "text": "hi"}, {"Idempotency-Key": "k" * 256})
    assert_error(response, 400)
    assert await message_total(client, tenant) == 1


async def test_idempotency_keys_are_per_organization(client, tenant, other_tenant, runtime):
    body = {"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}
    key = {"Idempotency-Key": "same-key"}
    ours = await send(client, tenant, body, key)
    theirs = await send(client, other_tenant, body, key)
    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["id"] != theirs.json()["id"]
    assert await message_total(client, tenant) == await message_total(client, other_tenant) == 1


async def test_a_refused_send_does_not_burn_its_idempotency_key(client, tenant, runtime):
    key = {"Idempotency-Key": "retry-me"}
    body = {"to": PHONE, "type": "text", "text": "hi"}
    assert_error(await send(client, tenant, body, key), 400, "outside_customer_service_window")
    await inbound(client, tenant)
    retried = await send(client, tenant, body, key)
    assert retried.status_code == 201, retried.text


# --- reading messages back ---------------------------------------------------------------------------------------


async def test_messages_list_pages_and_filters_by_conversation(client, tenant, runtime, frozen_clock):
    asha = await inbound(client, tenant)
    ravi = await inbound(client, tenant, phone=OTHER_PHONE, name="Ravi")
    sent_ids = []
    for n in range(4):
        clock.advance(timedelta(seconds=1))
        response = await send(client, tenant, {"to": PHONE, "type": "text", "text": f"m{n}"})
        sent_ids.append(response.json()["id"])

    everything = await client.get(f"{API}/messages", params={"limit": 100}, headers=tenant.headers)
    assert everything.json()["pagination"] == {"page": 1, "limit": 100, "total": 6, "totalPages": 1}

    page1 = (await client.get(f"{API}/messages", params={"limit": 4}, headers=tenant.headers)).json()
    page2 = (await client.get(f"{API}/messages", params={"limit": 4, "page": 2}, headers=tenant.headers)).json()
    assert page1["pagination"] == {"page": 1, "limit": 4, "total": 6, "totalPages": 2}
    assert page2["pagination"] == {"page": 2, "limit": 4, "total": 6, "totalPages": 2}
    assert [m["id"] for m in page1["data"]] == sent_ids[::-1]  # most recent first
    assert {m["id"] for m in page2["data"]} == {asha["id"], ravi["id"]}
    beyond = (await client.get(f"{API}/messages", params={"limit": 4, "page": 3}, headers=tenant.headers)).json()
    assert beyond["data"] == []

    filtered = await client.get(
        f"{API}/messages", params={"conversationId": ravi["conversationId"]}, headers=tenant.headers
    )
    assert filtered.status_code == 200
    assert [m["id"] for m in filtered.json()["data"]] == [ravi["id"]]
    assert filtered.json()["pagination"]["total"] == 1

    for params in ({"page": 0}, {"limit": 0}, {"limit": 101}, {"page": "x"}):
        assert_error(await client.get(f"{API}/messages", params=params, headers=tenant.headers), 400)


async def test_another_organizations_messages_are_not_found(client, tenant, other_tenant, runtime):
    theirs = await inbound(client, other_tenant)
    assert_error(await client.get(f"{API}/messages/{theirs['id']}", headers=tenant.headers), 404, "message_not_found")
    assert_error(await client.get(f"{API}/messages/msg_nope", headers=tenant.headers), 404, "message_not_found")
    listed = await client.get(
        f"{API}/messages", params={"conversationId": theirs["conversationId"]}, headers=tenant.headers
    )
    assert_error(listed, 404)
    assert await message_total(client, tenant) == 0
    assert (await client.get(f"{API}/messages/{theirs['id']}", headers=other_tenant.headers)).status_code == 200


async def test_sending_needs_the_send_scope(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["messages:read"])
    response = await send(
        client, reader, {"to": PHONE, "type": "template", "templateName": "hello_world", "language": "en_US"}
    )
    assert_error(response, 403)
    assert (await client.get(f"{API}/messages", headers=reader.headers)).status_code == 200
    assert_error(await client.post(f"{API}/send", json={"to": PHONE, "type": "text", "text": "x"}), 401)

"""Quick replies: saved answers with a shortcut, filled in for a contact and sent with `POST /send`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from kaanha.kit.clock import clock
from kaanha.models import Media, Message, QuickReply
from kaanha.runtime import Runtime
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant, make_tenant
from tests.helpers import PHONE, assert_error, inbound
from tests.messages.test_send import MP3, PDF, PNG, upload

WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 64


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/quick-replies", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listing(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[str]:
    response = await client.get(f"{API}/quick-replies", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [item["shortcut"] for item in response.json()["data"]]


async def send(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/send", json={"to": PHONE, **body}, headers=tenant.headers)


async def count(runtime: Runtime, model: type[Any]) -> int:
    async with runtime.database.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_get_update_and_delete(client, tenant):
    created = await create(client, tenant, shortcut="/Thanks", text="Thanks, {{contact.name|there}}!")
    assert created["shortcut"] == "thanks"  # people type the slash; it isn't part of the name
    assert created["text"] == "Thanks, {{contact.name|there}}!"
    assert created["mediaId"] is None
    assert created["type"] == "text"
    assert set(created) >= {"id", "shortcut", "text", "mediaId", "createdAt"}

    fetched = await client.get(f"{API}/quick-replies/{created['id']}", headers=tenant.headers)
    assert fetched.json() == created

    changed = await client.patch(
        f"{API}/quick-replies/{created['id']}", json={"text": "Thank you!"}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["text"] == "Thank you!"
    assert changed.json()["shortcut"] == "thanks"

    deleted = await client.delete(f"{API}/quick-replies/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"{API}/quick-replies/{created['id']}", headers=tenant.headers)
    assert_error(gone, 404, "quick_reply_not_found")


async def test_search_by_shortcut_start_or_text(client, tenant):
    await create(client, tenant, shortcut="thanks", text="Thank you for your order!")
    await create(client, tenant, shortcut="hours", text="We are open 9 to 6, Monday to Saturday.")
    await create(client, tenant, shortcut="refund", text="Refunds take 5-7 days to reach your ORDER account.")

    assert await listing(client, tenant) == ["hours", "refund", "thanks"]
    assert await listing(client, tenant, search="/th") == ["thanks"]
    assert await listing(client, tenant, search="order") == ["refund", "thanks"]  # any case, inside the text
    assert await listing(client, tenant, search="monday") == ["hours"]
    assert await listing(client, tenant, search="100%") == []  # LIKE's wildcards are plain characters


async def test_a_shortcut_is_unique_in_an_organization(client, tenant, other_tenant, runtime):
    await create(client, tenant, shortcut="thanks", text="Thanks!")
    again = await client.post(f"{API}/quick-replies", json={"shortcut": "/THANKS", "text": "x"}, headers=tenant.headers)
    assert_error(again, 409, "duplicate_shortcut")
    other = await create(client, tenant, shortcut="hi", text="Hello")
    renamed = await client.patch(
        f"{API}/quick-replies/{other['id']}", json={"shortcut": "thanks"}, headers=tenant.headers
    )
    assert_error(renamed, 409, "duplicate_shortcut")
    assert (await client.get(f"{API}/quick-replies/{other['id']}", headers=tenant.headers)).json()["shortcut"] == "hi"
    # Another organization may use the same shortcut.
    await create(client, other_tenant, shortcut="thanks", text="Merci!")
    assert await count(runtime, QuickReply) == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"shortcut": "two words", "text": "x"}, "validation_error"),
        ({"shortcut": "/", "text": "x"}, "validation_error"),
        ({"shortcut": "a" * 33, "text": "x"}, "validation_error"),
        ({"shortcut": 5, "text": "x"}, "validation_error"),
        ({"text": "no shortcut"}, "validation_error"),
        ({"shortcut": "empty", "text": "   "}, "invalid_quick_reply"),
        ({"shortcut": "typo", "text": "Hi {{contact.nmae}}"}, "unknown_contact_field"),
        ({"shortcut": "long", "text": "x" * 4097}, "validation_error"),
        ({"shortcut": "extra", "text": "x", "colour": "red"}, "validation_error"),
        ({"shortcut": "media", "text": "x", "mediaId": "med_unknown"}, "media_not_found"),
    ],
)
async def test_invalid_quick_replies_are_refused_and_nothing_is_written(client, tenant, runtime, body, code):
    response = await client.post(f"{API}/quick-replies", json=body, headers=tenant.headers)
    assert_error(response, 404 if code == "media_not_found" else 400, code)
    assert await count(runtime, QuickReply) == 0


async def test_media_must_be_sendable_and_captions_fit(client, tenant, other_tenant, runtime):
    audio = await upload(client, tenant, MP3, "note.mp3", "audio/mpeg")
    captioned = await client.post(
        f"{API}/quick-replies", json={"shortcut": "voice", "text": "Listen", "mediaId": audio}, headers=tenant.headers
    )
    assert "audio messages have no caption" in assert_error(captioned, 400, "invalid_quick_reply")["error"]
    assert (await create(client, tenant, shortcut="voice", mediaId=audio))["type"] == "audio"

    image = await upload(client, tenant, PNG, "menu.png", "image/png")
    too_long = await client.post(
        f"{API}/quick-replies", json={"shortcut": "menu", "text": "c" * 1025, "mediaId": image}, headers=tenant.headers
    )
    assert "1024" in assert_error(too_long, 400, "invalid_quick_reply")["error"]

    sticker = await upload(client, tenant, WEBP, "sticker.webp", "image/webp")
    webp = await client.post(
        f"{API}/quick-replies", json={"shortcut": "sticker", "mediaId": sticker}, headers=tenant.headers
    )
    assert_error(webp, 400, "invalid_quick_reply")

    nameless = await upload(client, tenant, PDF, "scan.pdf", "application/pdf")
    async with runtime.database.transaction() as session:  # as a customer's document may arrive: no name
        await session.execute(update(Media).where(Media.id == nameless).values(filename=None))
    unnamed = await client.post(
        f"{API}/quick-replies", json={"shortcut": "doc", "mediaId": nameless}, headers=tenant.headers
    )
    assert "file name" in assert_error(unnamed, 400, "invalid_quick_reply")["error"]

    theirs = await upload(client, other_tenant, PNG, "theirs.png", "image/png")
    foreign = await client.post(
        f"{API}/quick-replies", json={"shortcut": "x", "mediaId": theirs}, headers=tenant.headers
    )
    assert_error(foreign, 404)
    assert await count(runtime, QuickReply) == 1


async def test_sending_a_quick_reply_fills_it_in_for_the_contact(client, tenant, runtime, frozen_clock):
    await create(
        client,
        tenant,
        shortcut="thanks",
        text="Thanks, {{contact.name|there}}! Order for {{contact.attributes.city|your city}}.",
    )
    await inbound(client, tenant, name="Asha")

    response = await send(client, tenant, quickReply="/thanks")
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["type"] == "text"
    assert message["status"] == "queued"
    assert message["content"] == {"text": "Thanks, Asha! Order for your city.", "quickReply": "thanks"}

    await drain(runtime)
    sent = await client.get(f"{API}/messages/{message['id']}", headers=tenant.headers)
    assert sent.json()["status"] == "sent"


async def test_a_contact_without_the_field_gets_the_fallback_or_a_clear_error(client, tenant, runtime, frozen_clock):
    await create(client, tenant, shortcut="hello", text="Hello {{contact.name|there}}")
    await create(client, tenant, shortcut="city", text="Your store in {{contact.attributes.city}} is open")
    await client.post(f"{API}/sandbox/inbound", json={"from": PHONE, "text": "Hi"}, headers=tenant.headers)
    before = await count(runtime, Message)

    hello = await send(client, tenant, quickReply="hello")
    assert hello.json()["content"]["text"] == "Hello there"

    city = await send(client, tenant, quickReply="city")
    error = assert_error(city, 400, "contact_field_missing")
    assert "contact.attributes.city" in error["error"]
    assert await count(runtime, Message) == before + 1


async def test_the_24_hour_window_applies(client, tenant, runtime, frozen_clock):
    await create(client, tenant, shortcut="thanks", text="Thanks!")
    never_wrote = await send(client, tenant, quickReply="thanks")
    assert_error(never_wrote, 400, "outside_customer_service_window")

    await inbound(client, tenant)
    clock.advance(timedelta(hours=24, seconds=1))
    closed = await send(client, tenant, quickReply="thanks")
    assert_error(closed, 400, "outside_customer_service_window")
    assert await count(runtime, Message) == 1  # only the customer's


async def test_media_quick_replies_send_as_their_media_type(client, tenant, runtime, frozen_clock):
    image = await upload(client, tenant, PNG, "menu.png", "image/png")
    document = await upload(client, tenant, PDF, "price-list.pdf", "application/pdf")
    await create(client, tenant, shortcut="menu", text="Today's menu, {{contact.name|friend}}", mediaId=image)
    await create(client, tenant, shortcut="prices", mediaId=document)
    await inbound(client, tenant, name="Ravi")

    menu = (await send(client, tenant, quickReply="menu")).json()
    assert menu["type"] == "image"
    assert menu["content"] == {
        "mediaId": image,
        "caption": "Today's menu, Ravi",
        "mimeType": "image/png",
        "quickReply": "menu",
    }
    prices = (await send(client, tenant, quickReply="prices", replyTo=menu["id"])).json()
    assert prices["type"] == "document"
    assert prices["content"]["filename"] == "price-list.pdf"
    assert prices["replyTo"] == menu["id"]

    await drain(runtime)
    for message in (menu, prices):
        got = await client.get(f"{API}/messages/{message['id']}", headers=tenant.headers)
        assert got.json()["status"] == "sent"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"quickReply": "thanks", "type": "text"}, 400, "validation_error"),
        ({"quickReply": "thanks", "text": "Hi"}, 400, "invalid_message"),
        ({"quickReply": "nope"}, 404, "quick_reply_not_found"),
        ({"quickReply": 7}, 400, "validation_error"),
        ({"quickReply": ""}, 400, "validation_error"),
    ],
)
async def test_bad_quick_reply_sends(client, tenant, runtime, frozen_clock, body, status, code):
    await create(client, tenant, shortcut="thanks", text="Thanks!")
    await inbound(client, tenant)
    assert_error(await send(client, tenant, **body), status, code)
    assert await count(runtime, Message) == 1


async def test_another_organizations_quick_replies_are_invisible(client, tenant, other_tenant, runtime, frozen_clock):
    theirs = await create(client, other_tenant, shortcut="secret", text="Not yours")
    assert_error(await client.get(f"{API}/quick-replies/{theirs['id']}", headers=tenant.headers), 404)
    patched = await client.patch(f"{API}/quick-replies/{theirs['id']}", json={"text": "x"}, headers=tenant.headers)
    assert_error(patched, 404)
    assert_error(await client.delete(f"{API}/quick-replies/{theirs['id']}", headers=tenant.headers), 404)
    assert await listing(client, tenant) == []
    await inbound(client, tenant)
    assert_error(await send(client, tenant, quickReply="secret"), 404, "quick_reply_not_found")


async def test_scopes(client, runtime):
    reader = await make_tenant(runtime, "Readers", scopes=["quick_replies:read"])
    assert (await client.get(f"{API}/quick-replies", headers=reader.headers)).status_code == 200
    refused = await client.post(f"{API}/quick-replies", json={"shortcut": "x", "text": "y"}, headers=reader.headers)
    assert "quick_replies:write" in assert_error(refused, 403, "insufficient_scope")["error"]
    writer = await make_tenant(runtime, "Writers", scopes=["quick_replies:write"])
    assert_error(await client.get(f"{API}/quick-replies", headers=writer.headers), 403, "insufficient_scope")

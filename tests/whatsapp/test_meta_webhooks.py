"""Meta's webhooks over HTTP: `GET|POST /api/webhooks/whatsapp`, signed like Meta signs them.

Each test connects an organization to the Cloud API directly in the database (no Graph call), signs
the exact bytes it POSTs with its own HMAC (not the production signer), runs the background jobs,
and checks what a user of the API would see.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, update

from kaanha.app import create_app
from kaanha.config import RateLimitSettings
from kaanha.kit.clock import clock
from kaanha.kit.ids import new_id
from kaanha.models import InboundEvent, Job, Message, Template, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant
from tests.helpers import assert_error

PAYLOADS = Path(__file__).parent / "payloads"
INBOUND = sorted(PAYLOADS.glob("inbound_*.json"))
WEBHOOK = "/api/webhooks/whatsapp"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
INBOUND_EVENT_JOB = "whatsapp.inbound_event"
FETCH_MEDIA_JOB = "whatsapp.fetch_media"

SECRET = "acme-app-secret-5f1c"
OTHER_SECRET = "globex-app-secret-9d2e"
VERIFY_TOKEN = "acme-verify-token-77"
OUR_NUMBER = "100000000000001"
THEIR_NUMBER = "200000000000002"
OUR_WABA = "300000000000003"
THEIR_WABA = "400000000000004"
CUSTOMER = "+919876543210"
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

# What each real payload must become, as the API shows it: our type and part of the content.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "inbound_audio": (
        "audio",
        {"providerMediaId": "1234567890987654321", "mimeType": "audio/ogg; codecs=opus", "voice": False},
    ),
    "inbound_button_quick_reply": ("button", {"text": "title", "payload": "callback_data"}),
    "inbound_contacts": (
        "contact",
        {"contacts": [{"name": {"formatted_name": "Barbara J. Johnson"}, "phones": [{"wa_id": "14125550829"}]}]},
    ),
    "inbound_document": (
        "document",
        {
            "providerMediaId": "1234567890987654321",
            "mimeType": "application/pdf",
            "filename": "filename.pdf",
            "caption": "caption",
            "forwarded": True,
        },
    ),
    "inbound_image": (
        "image",
        {"providerMediaId": "1003383421387256", "mimeType": "image/jpeg", "caption": "Taj Mahal"},
    ),
    "inbound_interactive_button_reply": (
        "interactive",
        {"interactive": {"type": "button_reply", "id": "cancel-button", "title": "Cancel"}},
    ),
    "inbound_interactive_list_reply": (
        "interactive",
        {
            "interactive": {
                "type": "list_reply",
                "id": "priority_express",
                "title": "Priority Mail Express",
                "description": "Next Day to 2 Days",
            }
        },
    ),
    "inbound_interactive_nfm_reply_flow": (
        "interactive",
        {"interactive": {"type": "flow_reply", "name": "flow", "response": {"delivery_rating": "4"}}},
    ),
    "inbound_location_named_place": (
        "location",
        {"latitude": 37.4611978, "longitude": -122.2164385, "name": "Facebook HQ", "forwarded": True},
    ),
    "inbound_order": ("order", {"order": {"catalogId": "354160437058781"}}),
    "inbound_reaction": ("reaction", {"whatsappMessageId": "wamid.yzxyzx=", "emoji": "\U0001f62e", "removed": False}),
    "inbound_reaction_removed_empty_emoji": ("reaction", {"emoji": "", "removed": True}),
    "inbound_revoke_deleted": ("revoke", {"whatsappMessageId": "<ORIGINAL_WHATSAPP_MESSAGE_ID>"}),
    "inbound_sticker_static": (
        "sticker",
        {"providerMediaId": "1234567890987654321", "mimeType": "image/webp", "animated": False},
    ),
    "inbound_system_user_changed_number": (
        "system",
        {"system": {"type": "user_changed_number", "waId": "12195555358"}},
    ),
    "inbound_text": ("text", {"text": "Does it come in another color?"}),
    "inbound_text_ctwa_ad_referral": (
        "text",
        {"text": "Can I get more info about this?", "referral": {"source_type": "ad", "headline": "Chat with us"}},
    ),
    "inbound_text_forwarded": ("text", {"text": "forwarded text", "forwarded": True}),
    "inbound_text_referred_product": (
        "text",
        {"text": "Is this still available?", "referredProduct": {"product_retailer_id": "di9ozbzfi4"}},
    ),
    "inbound_text_reply_context": ("text", {"text": "replied text"}),
    "inbound_unsupported": ("unsupported", {"originalType": "unsupported", "errors": [{"code": 131051}]}),
    "inbound_video_forwarded_caption": (
        "video",
        {"providerMediaId": "765756756", "mimeType": "video/mp4", "caption": "caption", "forwarded": True},
    ),
}


# --- signing, payloads and setup -------------------------------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> str:
    """X-Hub-Signature-256 as Meta computes it: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def routed(payload: dict[str, Any], phone_number_id: str, *, waba_id: str | None = None) -> dict[str, Any]:
    """The payload addressed to our number (and WhatsApp Business Account, when given)."""
    copied = copy.deepcopy(payload)
    for entry in copied["entry"]:
        if waba_id is not None:
            entry["id"] = waba_id
        for change in entry["changes"]:
            if "metadata" in change["value"]:
                change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return copied


async def post_signed(
    client: httpx.AsyncClient, body: bytes, *, secret: str = SECRET, signature: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(body, secret)}
    return await client.post(WEBHOOK, content=body, headers=headers)


async def deliver(client: httpx.AsyncClient, runtime: Runtime, payload: dict[str, Any], **signing: Any) -> None:
    """Meta POSTs the payload; our 200; then the worker processes it."""
    response = await post_signed(client, encode(payload), **signing)
    assert response.status_code == 200, response.text
    await drain(runtime)


async def connect_cloud_api(
    runtime: Runtime,
    tenant: Tenant,
    *,
    phone_number_id: str = OUR_NUMBER,
    waba_id: str = OUR_WABA,
    secret: str = SECRET,
    verify_token: str | None = VERIFY_TOKEN,
) -> None:
    async with runtime.database.transaction() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
        assert connection is not None
        connection.type = "cloud_api"
        connection.phone_number_id = phone_number_id
        connection.waba_id = waba_id
        connection.access_token_encrypted = runtime.secret_box.encrypt(f"token-{tenant.organization_id}")
        connection.app_secret_encrypted = runtime.secret_box.encrypt(secret)
        connection.verify_token = verify_token


async def count(runtime: Runtime, model: Any, *conditions: Any) -> int:
    async with runtime.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


async def nothing_stored(runtime: Runtime) -> bool:
    return (
        await count(runtime, InboundEvent) == 0
        and await count(runtime, Job) == 0
        and await count(runtime, Message) == 0
    )


async def listed(client: httpx.AsyncClient, tenant: Tenant, what: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/{what}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def get_message(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()
    return message


async def connection_status(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get(f"{API}/status", headers=tenant.headers)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


def assert_contains(actual: Any, expected: Any, where: str = "content") -> None:
    """`expected` is part of `actual`: dicts by their keys, lists item by item, the rest equal."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {actual!r}"
            assert_contains(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r}"
        for index, (got, wanted) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(got, wanted, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(moment: datetime) -> str:
    return str(int(moment.timestamp()))


@pytest_asyncio.fixture(autouse=True)
async def graph_is_unreachable(runtime: Runtime) -> AsyncIterator[list[httpx.Request]]:
    """No test here talks to Meta: any Graph call (media fetches) fails to connect, and is recorded."""
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("the Graph API is not reachable from these tests", request=request)

    await runtime.http.aclose()
    runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    yield attempts
    await runtime.http.aclose()


@pytest_asyncio.fixture
async def cloud(runtime: Runtime, tenant: Tenant) -> Tenant:
    """The tenant, connected to the Cloud API as OUR_NUMBER in OUR_WABA, app secret SECRET."""
    await connect_cloud_api(runtime, tenant)
    return tenant


# --- 1. every real inbound payload, end to end ---------------------------------------------------


def test_every_inbound_payload_has_an_expectation():
    assert {path.stem for path in INBOUND} == set(EXPECTED)


@pytest.mark.parametrize("path", INBOUND, ids=lambda path: path.stem)
async def test_a_real_inbound_payload_posted_by_meta_becomes_a_message(
    path, client, runtime, cloud, graph_is_unreachable
):
    payload = routed(json.loads(path.read_text()), OUR_NUMBER)
    value = payload["entry"][0]["changes"][0]["value"]
    raw = value["messages"][0]

    response = await post_signed(client, encode(payload))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True}
    # Answered once stored, before any processing: Meta's 200 never waits on us.
    assert await listed(client, cloud, "messages") == []
    assert await count(runtime, InboundEvent) == 1
    assert await count(runtime, Job, Job.kind == INBOUND_EVENT_JOB) == 1

    await drain(runtime)

    (message,) = await listed(client, cloud, "messages")
    message_type, content = EXPECTED[path.stem]
    assert message["type"] == message_type
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["whatsappMessageId"] == raw["id"]
    assert_contains(message["content"], content)

    (contact,) = await listed(client, cloud, "contacts")
    sender = raw["from"]
    assert contact["id"] == message["contactId"]
    assert contact["phone"] == (f"+{sender}" if sender.isdigit() else sender)
    profile = {c["wa_id"]: c["profile"]["name"] for c in value.get("contacts", [])}
    assert contact["name"] == profile.get(sender)

    (chat,) = await listed(client, cloud, "chats")
    assert chat["id"] == message["conversationId"]
    assert chat["status"] == "OPEN"
    assert chat["unreadCount"] == 1
    assert chat["contact"]["id"] == contact["id"]

    async with runtime.database.sessions() as session:
        fetches = list(await session.scalars(select(Job).where(Job.kind == FETCH_MEDIA_JOB)))
    if raw["type"] in MEDIA_TYPES:
        assert message["content"]["providerMediaId"] == raw[raw["type"]]["id"]
        assert "mediaId" not in message["content"]  # the bytes are fetched from Meta in the background
        assert [job.payload for job in fetches] == [{"messageId": message["id"]}]
        assert fetches[0].organization_id == cloud.organization_id
        # The worker tried Meta for that media id; Meta being unreachable, it will try again.
        media_id = raw[raw["type"]]["id"]
        assert [request.url.path.rsplit("/", 1)[-1] for request in graph_is_unreachable] == [media_id]
        assert fetches[0].status == "pending"
    else:
        assert fetches == []
        assert graph_is_unreachable == []  # nothing else calls Meta for an inbound message


async def test_a_batch_of_entries_changes_and_messages_is_stored_whole(client, runtime, cloud):
    first = routed(load("inbound_text.json"), OUR_NUMBER)
    second = routed(load("inbound_text_forwarded.json"), OUR_NUMBER)
    batch = copy.deepcopy(first)
    batch["entry"].append(second["entry"][0])
    extra = copy.deepcopy(first["entry"][0]["changes"][0]["value"]["messages"][0])
    extra.update(id="wamid.batch-extra", text={"body": "and in blue?"})
    batch["entry"][0]["changes"][0]["value"]["messages"].append(extra)

    await deliver(client, runtime, batch)

    texts = sorted(m["content"]["text"] for m in await listed(client, cloud, "messages"))
    assert texts == ["Does it come in another color?", "and in blue?", "forwarded text"]
    assert sorted(c["name"] for c in await listed(client, cloud, "contacts")) == ["Sheena Nelson", "Test Name"]


# --- 2. signatures: nothing unsigned or forged is stored -----------------------------------------


def _tampered(body: bytes) -> bytes:
    changed = body.replace(b"another color", b"another colour")
    assert changed != body
    return changed


async def test_forged_or_unsigned_posts_are_refused_and_store_nothing(client, runtime, cloud, other_tenant):
    await connect_cloud_api(
        runtime, other_tenant, phone_number_id=THEIR_NUMBER, waba_id=THEIR_WABA, secret=OTHER_SECRET
    )
    ours = encode(routed(load("inbound_text.json"), OUR_NUMBER))
    nobodys = encode(routed(load("inbound_text.json"), "999999999999999"))
    signature = sign(ours)

    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("no signature header", ours, {}),
        ("no sha256= prefix", ours, {"X-Hub-Signature-256": signature.removeprefix("sha256=")}),
        ("another scheme", ours, {"X-Hub-Signature-256": "sha1=" + signature.removeprefix("sha256=")}),
        ("empty header", ours, {"X-Hub-Signature-256": ""}),
        ("wrong secret", ours, {"X-Hub-Signature-256": sign(ours, "not-the-secret")}),
        ("body changed after signing", _tampered(ours), {"X-Hub-Signature-256": signature}),
        ("a number no organization has", nobodys, {"X-Hub-Signature-256": sign(nobodys)}),
        ("another organization's secret", ours, {"X-Hub-Signature-256": sign(ours, OTHER_SECRET)}),
    ]
    for case, body, headers in cases:
        response = await client.post(WEBHOOK, content=body, headers={"Content-Type": "application/json", **headers})
        body_of_error = assert_error(response, 401, "invalid_signature")
        assert "X-Hub-Signature-256" in body_of_error["error"], case
        assert await nothing_stored(runtime), case

    await drain(runtime)
    assert await listed(client, cloud, "messages") == []
    assert await listed(client, other_tenant, "messages") == []


@pytest.mark.parametrize("victim_on", ["cloud_api", "sandbox"])
async def test_another_organizations_app_cannot_write_into_this_organizations_number(
    client, runtime, tenant, other_tenant, victim_on
):
    """A tenant knows its own app secret: a payload naming its own WABA but our number must not reach us."""
    if victim_on == "cloud_api":
        await connect_cloud_api(runtime, tenant)
    await connect_cloud_api(
        runtime, other_tenant, phone_number_id=THEIR_NUMBER, waba_id=THEIR_WABA, secret=OTHER_SECRET
    )
    async with runtime.database.sessions() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
        assert connection is not None
        our_number = connection.phone_number_id
    assert our_number
    spoofed = routed(load("inbound_text.json"), our_number, waba_id=THEIR_WABA)
    # Even alongside a change for the attacker's own number, in one batch.
    mixed = copy.deepcopy(spoofed)
    mixed["entry"].insert(0, routed(load("inbound_text_forwarded.json"), THEIR_NUMBER, waba_id=THEIR_WABA)["entry"][0])

    for payload in (spoofed, mixed):
        response = await post_signed(client, encode(payload), secret=OTHER_SECRET)
        assert_error(response, 401, "invalid_signature")
    await drain(runtime)

    assert await listed(client, tenant, "messages") == []
    assert await listed(client, tenant, "contacts") == []
    assert await nothing_stored(runtime)


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2, 3]", b'"entry"', b'{"entry": [', b""])
async def test_a_validly_signed_body_that_is_not_a_json_object_is_a_400(client, runtime, cloud, body):
    response = await post_signed(client, body)
    assert_error(response, 400, "invalid_webhook_body")
    assert await nothing_stored(runtime)


async def test_a_sandbox_organization_has_no_secret_to_sign_with(client, runtime, tenant):
    """Sandbox numbers are never reachable through Meta's endpoint, whatever the signature."""
    async with runtime.database.sessions() as session:
        connection = await session.get(WhatsAppConnection, tenant.organization_id)
        assert connection is not None
        sandbox_number = connection.phone_number_id
    assert sandbox_number
    body = encode(routed(load("inbound_text.json"), sandbox_number))
    for secret in ("", "null", "None", SECRET):
        assert_error(await post_signed(client, body, secret=secret), 401, "invalid_signature")
    assert await nothing_stored(runtime)


# --- 3. the subscription handshake ---------------------------------------------------------------


def handshake(**params: str) -> str:
    return f"{WEBHOOK}?" + "&".join(f"{name.replace('_', '.', 1)}={value}" for name, value in params.items())


async def test_the_handshake_echoes_the_challenge_for_our_verify_token(client, cloud):
    response = await client.get(handshake(hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN, hub_challenge="12345"))

    assert response.status_code == 200, response.text
    assert response.text == "12345"
    assert response.headers["content-type"].startswith("text/plain")


async def test_the_handshake_is_refused_without_the_right_token_and_mode(client, cloud, other_tenant):
    # other_tenant stays on the sandbox: its verify token is null.
    refused = [
        handshake(hub_mode="subscribe", hub_verify_token="not-ours", hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN + "x", hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN[:-1], hub_challenge="12345"),
        handshake(hub_verify_token=VERIFY_TOKEN, hub_challenge="12345"),
        handshake(hub_mode="unsubscribe", hub_verify_token=VERIFY_TOKEN, hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_verify_token="", hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_verify_token="null", hub_challenge="12345"),
        handshake(hub_mode="subscribe", hub_verify_token="None", hub_challenge="12345"),
    ]
    for url in refused:
        response = await client.get(url)
        body = assert_error(response, 403, "verification_failed")
        assert "12345" not in body["error"], url


async def test_a_verify_token_left_on_a_sandbox_connection_never_matches(client, runtime, tenant):
    async with runtime.database.transaction() as session:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == tenant.organization_id)
            .values(verify_token=VERIFY_TOKEN)
        )
    response = await client.get(handshake(hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN, hub_challenge="1"))
    assert_error(response, 403, "verification_failed")


# --- 4. duplicates ---------------------------------------------------------------------------------


async def test_the_same_bytes_twice_are_stored_once(client, runtime, cloud):
    body = encode(routed(load("inbound_text.json"), OUR_NUMBER))

    first = await post_signed(client, body)
    again = await post_signed(client, body)
    await drain(runtime)
    late = await post_signed(client, body)  # Meta retries for days, even after we processed it
    await drain(runtime)

    assert [first.status_code, again.status_code, late.status_code] == [200, 200, 200]
    assert await count(runtime, InboundEvent) == 1
    assert await count(runtime, Job, Job.kind == INBOUND_EVENT_JOB) == 1
    (message,) = await listed(client, cloud, "messages")
    assert message["content"]["text"] == "Does it come in another color?"
    (chat,) = await listed(client, cloud, "chats")
    assert chat["unreadCount"] == 1


async def test_the_same_message_in_different_payloads_is_stored_once(client, runtime, cloud):
    payload = routed(load("inbound_text.json"), OUR_NUMBER)
    # Another app subscribed to the WABA, or a retry serialized differently: other bytes, same message.
    reshaped = copy.deepcopy(payload)
    reshaped["entry"][0]["time"] = 1751247548
    compact = json.dumps(payload, separators=(",", ":")).encode()

    for body in (encode(payload), encode(reshaped), compact):
        assert (await post_signed(client, body)).status_code == 200
    await drain(runtime)

    assert await count(runtime, InboundEvent) == 3
    (message,) = await listed(client, cloud, "messages")
    assert message["whatsappMessageId"] == payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    (chat,) = await listed(client, cloud, "chats")
    assert chat["unreadCount"] == 1


# --- 5. and 6. status webhooks -------------------------------------------------------------------


def status_payload(
    name: str, wamid: str, at: datetime, *, callback: str | None = None, phone_number_id: str = OUR_NUMBER
) -> dict[str, Any]:
    """A real `status_<name>.json` payload, for our number, about `wamid` at `at`."""
    payload = routed(load(f"status_{name}.json"), phone_number_id)
    (status,) = payload["entry"][0]["changes"][0]["value"]["statuses"]
    status.update(id=wamid, timestamp=unix(at), recipient_id=CUSTOMER.removeprefix("+"))
    if callback is not None:
        status["biz_opaque_callback_data"] = callback
    return payload


async def outbound_message(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: Tenant,
    *,
    wamid: str | None,
    text: str = "Your order has shipped",
) -> str:
    """A text we sent to CUSTOMER through the service layer (on the sandbox), as WhatsApp left it.

    With `wamid`: Meta accepted it at START (`sent`). Without: the send went out at START but its answer
    was lost (`dispatched_at` set, no WhatsApp id). Its send job is removed so no provider is called.
    """
    response = await client.post(
        f"{API}/sandbox/inbound", json={"from": CUSTOMER, "name": "Asha", "text": "Hi"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"{API}/send", json={"to": CUSTOMER, "type": "text", "text": text}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["id"]
    sent = {"whatsapp_message_id": wamid, "status": "sent", "status_rank": 10, "sent_at": START}
    lost = {"dispatched_at": START}
    async with runtime.database.transaction() as session:
        await session.execute(delete(Job).where(Job.organization_id == tenant.organization_id))
        await session.execute(update(Message).where(Message.id == message_id).values(**(sent if wamid else lost)))
    return message_id


WAMID = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQUE0QkY1RUZBOUM2MzNCQjMwAA=="
SENT_AT = START + timedelta(seconds=1)
DELIVERED_AT = START + timedelta(seconds=4)
READ_AT = START + timedelta(seconds=9)
AT = {"sent": SENT_AT, "delivered": DELIVERED_AT, "read": READ_AT}


@pytest.mark.parametrize("order", list(itertools.permutations(["sent", "delivered", "read"])), ids="-".join)
async def test_statuses_in_any_order_end_at_the_furthest(client, runtime, tenant, frozen_clock, order):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)

    for name in order:
        await deliver(client, runtime, status_payload(name, WAMID, AT[name]))
    # Duplicates after everything, and again later, change nothing.
    final = await get_message(client, tenant, message_id)
    for name in ("read", "delivered", "sent", "read"):
        await deliver(client, runtime, status_payload(name, WAMID, AT[name] + timedelta(minutes=1)))

    assert await get_message(client, tenant, message_id) == final
    assert final["status"] == "read"
    assert final["whatsappMessageId"] == WAMID
    assert final["error"] is None
    assert final["sentAt"] == iso(START)  # Meta's answer to the send came first
    assert final["readAt"] == iso(READ_AT)
    # A read before any delivered implies the delivery at the read's time.
    delivered_first = order.index("delivered") < order.index("read")
    assert final["deliveredAt"] == iso(DELIVERED_AT if delivered_first else READ_AT)


async def test_delivered_then_its_duplicates_then_read(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)

    await deliver(client, runtime, status_payload("delivered", WAMID, DELIVERED_AT))
    delivered = await get_message(client, tenant, message_id)
    assert (delivered["status"], delivered["deliveredAt"], delivered["readAt"]) == (
        "delivered",
        iso(DELIVERED_AT),
        None,
    )
    clock.advance(timedelta(minutes=5))
    await deliver(client, runtime, status_payload("delivered", WAMID, DELIVERED_AT + timedelta(seconds=30)))
    assert await get_message(client, tenant, message_id) == delivered

    await deliver(client, runtime, status_payload("read", WAMID, READ_AT))
    read = await get_message(client, tenant, message_id)
    assert (read["status"], read["deliveredAt"], read["readAt"]) == ("read", iso(DELIVERED_AT), iso(READ_AT))


async def test_played_counts_as_read(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)

    await deliver(client, runtime, status_payload("played", WAMID, READ_AT))

    played = await get_message(client, tenant, message_id)
    assert played["status"] == "read"
    assert played["readAt"] == iso(READ_AT)


async def test_a_failed_status_shows_metas_error_and_what_to_do(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)

    await deliver(client, runtime, status_payload("failed", WAMID, DELIVERED_AT))

    failed = await get_message(client, tenant, message_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == 131049
    assert failed["error"]["message"] == (
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    )
    explanation = failed["error"]["explanation"]
    assert isinstance(explanation, str)
    assert "marketing" in explanation
    assert "retry" in explanation
    # A late sent or delivered doesn't hide the failure.
    await deliver(client, runtime, status_payload("sent", WAMID, SENT_AT))
    await deliver(client, runtime, status_payload("delivered", WAMID, SENT_AT))
    assert await get_message(client, tenant, message_id) == failed


async def test_a_status_batch_with_other_fields_and_unknown_messages_still_applies(
    client, runtime, tenant, frozen_clock
):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)
    payload = status_payload("read", WAMID, READ_AT)
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"].insert(0, {**value["statuses"][0], "id": "wamid.not-one-of-ours", "status": "delivered"})
    payload["entry"][0]["changes"].insert(0, {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}})

    await deliver(client, runtime, payload)

    assert (await get_message(client, tenant, message_id))["status"] == "read"


async def test_a_send_whose_answer_was_lost_is_adopted_by_its_status_webhook(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=None)
    await connect_cloud_api(runtime, tenant)
    in_doubt = await get_message(client, tenant, message_id)
    assert (in_doubt["status"], in_doubt["whatsappMessageId"]) == ("queued", None)

    await deliver(client, runtime, status_payload("sent", WAMID, SENT_AT, callback=message_id))

    adopted = await get_message(client, tenant, message_id)
    assert adopted["whatsappMessageId"] == WAMID
    assert adopted["status"] == "sent"
    assert adopted["sentAt"] == iso(SENT_AT)
    async with runtime.database.sessions() as session:
        assert (await session.get(Message, message_id)).dispatched_at is None  # no longer in doubt

    # From now on Meta's id finds it, with or without the callback data.
    await deliver(client, runtime, status_payload("read", WAMID, READ_AT))
    read = await get_message(client, tenant, message_id)
    assert (read["status"], read["readAt"], read["whatsappMessageId"]) == ("read", iso(READ_AT), WAMID)


async def test_a_first_status_that_is_a_read_adopts_too(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=None)
    await connect_cloud_api(runtime, tenant)

    await deliver(client, runtime, status_payload("read", WAMID, READ_AT, callback=message_id))

    read = await get_message(client, tenant, message_id)
    assert (read["status"], read["whatsappMessageId"], read["readAt"]) == ("read", WAMID, iso(READ_AT))


async def test_a_callback_naming_another_organizations_message_changes_nothing(
    client, runtime, tenant, other_tenant, frozen_clock
):
    theirs = await outbound_message(client, runtime, other_tenant, wamid=None)
    before = await get_message(client, other_tenant, theirs)
    ours = await outbound_message(client, runtime, tenant, wamid=None)
    await connect_cloud_api(runtime, tenant)

    await deliver(client, runtime, status_payload("sent", WAMID, SENT_AT, callback=theirs))
    await deliver(client, runtime, status_payload("failed", "wamid.other", SENT_AT, callback=theirs))

    assert await get_message(client, other_tenant, theirs) == before
    async with runtime.database.sessions() as session:
        message = await session.get(Message, theirs)
        assert message is not None
        assert message.dispatched_at is not None
    # Nor does it touch our own message that Meta didn't name.
    mine = await get_message(client, tenant, ours)
    assert (mine["status"], mine["whatsappMessageId"]) == ("queued", None)


async def test_a_callback_cannot_take_over_a_message_that_has_its_whatsapp_id(client, runtime, tenant, frozen_clock):
    message_id = await outbound_message(client, runtime, tenant, wamid=WAMID)
    await connect_cloud_api(runtime, tenant)
    before = await get_message(client, tenant, message_id)

    await deliver(client, runtime, status_payload("read", "wamid.somebody-else", READ_AT, callback=message_id))

    assert await get_message(client, tenant, message_id) == before


# --- 7. template events ----------------------------------------------------------------------------


async def add_template(
    runtime: Runtime,
    tenant: Tenant,
    *,
    name: str,
    language: str,
    category: str = "UTILITY",
    status: str = "PENDING",
    external_id: str | None = None,
) -> str:
    template_id = new_id("tpl")
    async with runtime.database.transaction() as session:
        session.add(
            Template(
                id=template_id,
                organization_id=tenant.organization_id,
                name=name,
                language=language,
                category=category,
                status=status,
                components=[{"type": "BODY", "text": "Your order {{1}} is confirmed"}],
                external_id=external_id,
            )
        )
    return template_id


async def template(runtime: Runtime, template_id: str) -> Template:
    async with runtime.database.sessions() as session:
        found = await session.get(Template, template_id)
    assert found is not None
    return found


async def test_an_approval_reaches_the_template_of_the_waba(client, runtime, tenant, other_tenant):
    await connect_cloud_api(runtime, tenant, waba_id="102290129340398")
    await connect_cloud_api(
        runtime, other_tenant, phone_number_id=THEIR_NUMBER, waba_id=THEIR_WABA, secret=OTHER_SECRET
    )
    ours = await add_template(
        runtime, tenant, name="order_confirmation", language="en-US", external_id="1689556908129832"
    )
    theirs = await add_template(
        runtime, other_tenant, name="order_confirmation", language="en-US", external_id="1689556908129832"
    )

    await deliver(client, runtime, load("template_status_approved.json"))

    approved = await template(runtime, ours)
    assert (approved.status, approved.rejected_reason) == ("APPROVED", None)
    assert (await template(runtime, theirs)).status == "PENDING"  # another WABA's


async def test_an_event_without_a_template_id_matches_name_and_language(client, runtime, tenant):
    await connect_cloud_api(runtime, tenant, waba_id="102290129340398")
    matching = await add_template(runtime, tenant, name="order_confirmation", language="en-US")
    other_language = await add_template(runtime, tenant, name="order_confirmation", language="en")
    payload = load("template_status_approved.json")
    del payload["entry"][0]["changes"][0]["value"]["message_template_id"]

    await deliver(client, runtime, payload)

    assert (await template(runtime, matching)).status == "APPROVED"
    assert (await template(runtime, other_language)).status == "PENDING"


async def test_a_rejection_shows_metas_reason(client, runtime, tenant):
    await connect_cloud_api(runtime, tenant, waba_id="102290129340398")
    rejected_id = await add_template(
        runtime, tenant, name="abandoned_cart", language="en", category="MARKETING", external_id="1689556908129835"
    )

    await deliver(client, runtime, load("template_status_rejected.json"))

    rejected = await template(runtime, rejected_id)
    assert rejected.status == "REJECTED"
    assert rejected.rejected_reason is not None
    assert rejected.rejected_reason.startswith("Your template has parameters placed next to each other")


async def test_a_category_change_is_applied(client, runtime, tenant):
    await connect_cloud_api(runtime, tenant, waba_id="57438975935")
    changed_id = await add_template(
        runtime, tenant, name="my_message_template", language="he", status="APPROVED", external_id="12345678"
    )

    await deliver(client, runtime, load("template_category_update.json"))

    changed = await template(runtime, changed_id)
    assert (changed.category, changed.status) == ("MARKETING", "APPROVED")


async def test_a_template_event_for_a_waba_we_dont_have_is_refused(client, runtime, tenant):
    await connect_cloud_api(runtime, tenant)  # OUR_WABA, not the payload's
    untouched = await add_template(
        runtime, tenant, name="order_confirmation", language="en-US", external_id="1689556908129832"
    )

    response = await post_signed(client, encode(load("template_status_approved.json")))

    assert_error(response, 401, "invalid_signature")
    await drain(runtime)
    assert (await template(runtime, untouched)).status == "PENDING"


# --- 8. webhook health -----------------------------------------------------------------------------


async def test_silence_from_meta_shows_as_disconnected_until_a_webhook_arrives(
    client, runtime, settings, cloud, frozen_clock
):
    silence = timedelta(seconds=settings.cloud_api.webhook_silence_seconds)
    async with runtime.database.transaction() as session:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == cloud.organization_id)
            .values(awaiting_webhook_since=frozen_clock)  # a send, and no webhook since
        )
    status = await connection_status(client, cloud)
    assert (status["connected"], status["reason"], status["connectionType"]) == (True, None, "cloud_api")

    clock.advance(silence - timedelta(seconds=1))
    assert (await connection_status(client, cloud))["connected"] is True
    clock.advance(timedelta(seconds=2))
    silent = await connection_status(client, cloud)
    assert silent["connected"] is False
    assert "webhook" in silent["reason"].lower()
    assert "/api/webhooks/whatsapp" in silent["reason"]

    # A forged POST is no sign of life.
    body = encode(routed(load("inbound_text.json"), OUR_NUMBER))
    assert_error(await post_signed(client, body, secret="forged"), 401, "invalid_signature")
    assert (await connection_status(client, cloud))["connected"] is False

    assert (await post_signed(client, body)).status_code == 200
    healthy = await connection_status(client, cloud)
    assert (healthy["connected"], healthy["reason"]) == (True, None)
    connection = await client.get(f"{API}/connection", headers=cloud.headers)
    assert connection.json()["lastWebhookAt"] == iso(frozen_clock + silence + timedelta(seconds=1))


async def test_a_status_webhook_is_a_sign_of_life_too(client, runtime, cloud, frozen_clock, settings):
    async with runtime.database.transaction() as session:
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == cloud.organization_id)
            .values(awaiting_webhook_since=frozen_clock)
        )
    clock.advance(timedelta(seconds=settings.cloud_api.webhook_silence_seconds + 60))
    assert (await connection_status(client, cloud))["connected"] is False

    await deliver(client, runtime, status_payload("delivered", "wamid.unknown-to-us", frozen_clock))

    assert (await connection_status(client, cloud))["connected"] is True


# --- 9. size limit and rate limiting ---------------------------------------------------------------


async def test_a_body_over_4_mib_is_a_413(client, runtime, cloud):
    payload = routed(load("inbound_text.json"), OUR_NUMBER)
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "x" * (4 * 1024 * 1024)
    body = encode(payload)

    response = await post_signed(client, body)

    assert_error(response, 413, "payload_too_large")
    assert await nothing_stored(runtime)


async def test_a_3_mb_batch_is_accepted(client, runtime, cloud):
    """Meta's payloads reach 3 MB (up to 1,000 updates in one POST)."""
    payload = routed(load("inbound_text.json"), OUR_NUMBER)
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages[:] = [
        {**messages[0], "id": f"wamid.bulk-{index}", "text": {"body": f"{index} " + "x" * 400_000}}
        for index in range(8)
    ]
    body = encode(payload)
    assert 3 * 1000 * 1000 < len(body) < 4 * 1024 * 1024

    assert (await post_signed(client, body)).status_code == 200
    await drain(runtime)
    stored = await listed(client, cloud, "messages")
    assert sorted(m["whatsappMessageId"] for m in stored) == sorted(f"wamid.bulk-{index}" for index in range(8))


@pytest_asyncio.fixture
async def strict_client(runtime: Runtime, settings) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """The app with the API limited to 5 requests a minute per IP."""
    strict = settings.model_copy(update={"rate_limits": RateLimitSettings(api="5/minute", per_recipient="1000/hour")})
    transport = httpx.ASGITransport(app=create_app(strict, runtime=runtime), client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_metas_deliveries_are_not_rate_limited_like_api_clients(strict_client, runtime, cloud):
    template_payload = routed(load("inbound_text.json"), OUR_NUMBER)
    for index in range(50):
        payload = copy.deepcopy(template_payload)
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.burst-{index}"
        response = await post_signed(strict_client, encode(payload))
        assert response.status_code == 200, (index, response.text)
        assert "ratelimit-limit" not in {name.lower() for name in response.headers}
    handshakes = [
        await strict_client.get(handshake(hub_mode="subscribe", hub_verify_token=VERIFY_TOKEN, hub_challenge="7"))
        for _ in range(10)
    ]
    assert {response.status_code for response in handshakes} == {200}

    await drain(runtime)
    assert await count(runtime, Message, Message.organization_id == cloud.organization_id) == 50
    # The API itself is limited for the same caller: the limit is real, the webhook is exempt.
    statuses = [(await strict_client.get(f"{API}/status", headers=cloud.headers)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_copying_another_organizations_waba_id_gives_no_power_over_its_templates(
    client, runtime, tenant, other_tenant
):
    # The victim's real WABA, and an attacker who typed the same WABA id into its own connection.
    await connect_cloud_api(runtime, tenant, waba_id="102290129340398")
    await connect_cloud_api(
        runtime, other_tenant, phone_number_id=THEIR_NUMBER, waba_id="102290129340398", secret=OTHER_SECRET
    )
    victims = await add_template(runtime, tenant, name="abandoned_cart", language="en", external_id="1689556908129835")
    attackers = await add_template(
        runtime, other_tenant, name="abandoned_cart", language="en", external_id="1689556908129835"
    )

    # Signed with the attacker's own secret: accepted for the attacker only.
    await deliver(client, runtime, load("template_status_rejected.json"), secret=OTHER_SECRET)

    assert (await template(runtime, victims)).status == "PENDING"
    assert (await template(runtime, attackers)).status == "REJECTED"

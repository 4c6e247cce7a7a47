"""The Cloud API connection end to end against the fake Graph API: connect, send every type, Meta's
errors, lost answers, read receipts and inbound media."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kaanha.kit.clock import now
from kaanha.messages.service import SEND_JOB
from kaanha.models import Message, WhatsAppConnection
from kaanha.whatsapp.cloud_api.client import new_http_client
from kaanha.worker.queue import enqueue
from tests.conftest import API, make_tenant
from tests.helpers import assert_error
from tests.whatsapp.cloud import APP_SECRET, CUSTOMER, PHONE_NUMBER_ID, TOKEN, WABA_ID, cloud_connection, new_fake

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


@pytest.fixture
def fake():
    return new_fake()


@pytest.fixture
async def cloud(runtime, client, tenant, fake):
    async with cloud_connection(runtime, client, tenant, fake) as connected:
        yield connected


# --- connecting ---------------------------------------------------------------------------------------


async def test_connecting_checks_with_meta_and_reports_the_verified_number(cloud, client, tenant):
    status = (await client.get(f"{API}/status", headers=tenant.headers)).json()
    assert status == {
        "connected": True,
        "phoneNumber": "+1 555-010-0123",
        "connectionType": "cloud_api",
        "businessName": "Acme Store",
        "reason": None,
    }
    details = (await client.get(f"{API}/connection", headers=tenant.headers)).json()
    assert details["webhookUrl"].endswith("/api/webhooks/whatsapp")
    assert details["verifyToken"] == "verify-me-please"
    assert details["hasAccessToken"]
    assert details["hasAppSecret"]
    # The token and the app secret are never shown, nor stored in the clear.
    assert TOKEN not in json.dumps(details)
    assert APP_SECRET not in json.dumps(details)
    async with cloud.runtime.database.sessions() as session:
        row = await session.get(WhatsAppConnection, tenant.organization_id)
    assert row is not None
    assert TOKEN not in (row.access_token_encrypted or "")


async def test_a_rejected_token_changes_nothing(cloud, client, runtime):
    other = await make_tenant(runtime, "Globex")
    body = cloud.connection_body(accessToken="EAAG-wrong-token-000", phoneNumberId="106540352242999")
    r = await client.put(f"{API}/connection", json=body, headers=other.headers)
    assert "190" in assert_error(r, 400, "credentials_rejected")["error"]
    status = (await client.get(f"{API}/status", headers=other.headers)).json()
    assert status["connectionType"] == "sandbox"


async def test_an_unknown_phone_number_id_is_refused(cloud, client, runtime):
    other = await make_tenant(runtime, "Globex")
    r = await client.put(
        f"{API}/connection", json=cloud.connection_body(phoneNumberId="999999999"), headers=other.headers
    )
    assert_error(r, 400, "credentials_rejected")


async def test_a_number_connected_elsewhere_is_a_conflict(cloud, client, runtime):
    other = await make_tenant(runtime, "Globex")
    r = await client.put(f"{API}/connection", json=cloud.connection_body(), headers=other.headers)
    assert_error(r, 409, "phone_number_taken")


async def test_connection_input_is_checked(cloud, client, tenant):
    for body in (
        {"type": "cloud_api", "phoneNumberId": PHONE_NUMBER_ID},
        {**cloud.connection_body(), "phoneNumberId": "not-digits"},
        {**cloud.connection_body(), "messagesPerSecond": 5000},
        {**cloud.connection_body(), "extra": 1},
        {"type": "telegram"},
    ):
        assert_error(await client.put(f"{API}/connection", json=body, headers=tenant.headers), 400)


async def test_an_unreachable_graph_api_answers_502(cloud, client, runtime):
    other = await make_tenant(runtime, "Globex")
    runtime.settings.graph_api_url = "http://127.0.0.1:9"  # discard port: nothing listens
    body = cloud.connection_body(phoneNumberId="106540352242999")
    assert_error(await client.put(f"{API}/connection", json=body, headers=other.headers), 502, "graph_api_unavailable")


async def test_back_to_the_sandbox_forgets_metas_credentials(cloud, client, tenant):
    r = await client.put(f"{API}/connection", json={"type": "sandbox"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "sandbox"
    assert not r.json()["hasAccessToken"]


async def test_a_key_without_the_connection_scope_is_refused(cloud, client, runtime):
    narrow = await make_tenant(runtime, "Narrow", scopes=["messages:send"])
    assert_error(await client.put(f"{API}/connection", json=cloud.connection_body(), headers=narrow.headers), 403)


# --- sending ------------------------------------------------------------------------------------------


async def test_a_reply_is_sent_then_delivered_and_read_by_metas_webhooks(cloud):
    await cloud.customer_writes("Is my order on its way?")
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Yes, tomorrow!"})
    assert message["status"] == "queued"
    await cloud.settle()
    (accepted,) = cloud.fake.sent
    assert accepted.body["text"]["body"] == "Yes, tomorrow!"
    assert accepted.biz_opaque_callback_data == message["id"]
    found = await cloud.message(message["id"])
    assert found["whatsappMessageId"] == accepted.wamid
    assert found["status"] == "read"
    assert found["sentAt"]
    assert found["deliveredAt"]
    assert found["readAt"]


async def _upload(cloud, data: bytes, filename: str) -> str:
    r = await cloud.client.post(f"{API}/media", headers=cloud.tenant.headers, files={"file": (filename, data)})
    assert r.status_code == 201, r.text
    media_id: str = r.json()["mediaId"]
    return media_id


async def test_every_type_is_accepted_by_the_graph_api(cloud):
    await cloud.customer_writes("Hello")
    image = await _upload(cloud, PNG, "photo.png")
    inbound = (await cloud.client.get(f"{API}/messages", headers=cloud.tenant.headers)).json()["data"][0]
    to = f"+{CUSTOMER}"
    bodies = [
        {"to": to, "type": "text", "text": "Plain text"},
        {"to": to, "type": "image", "mediaId": image, "caption": "Your receipt"},
        {"to": to, "type": "image", "mediaId": image, "caption": "Again, uploaded once"},
        {"to": to, "type": "document", "mediaUrl": "https://example.com/invoice.pdf", "filename": "invoice.pdf"},
        {"to": to, "type": "location", "latitude": 19.07, "longitude": 72.87, "name": "Store", "address": "Mumbai"},
        {"to": to, "type": "contact", "contacts": [{"name": {"formattedName": "Asha K", "firstName": "Asha"}}]},
        {"to": to, "type": "reaction", "messageId": inbound["id"], "emoji": "👍"},
        {
            "to": to,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Confirm?"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
            },
        },
        {
            "to": to,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick a slot"},
                "action": {"button": "Slots", "sections": [{"title": "Mon", "rows": [{"id": "m9", "title": "9:00"}]}]},
            },
        },
        {
            "to": to,
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Track it"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://example.com"}},
            },
        },
        {
            "to": to,
            "type": "template",
            "templateName": "order_update",
            "language": "en_US",
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#7"}]}
            ],
        },
        {"to": to, "type": "text", "text": "A reply", "replyTo": inbound["id"]},
    ]
    sent = [await cloud.send(body) for body in bodies]
    await cloud.settle()
    for body, message in zip(bodies, sent, strict=True):
        found = await cloud.message(message["id"])
        assert found["status"] in ("sent", "delivered", "read"), (body, found["error"])
    by_id = {accepted.biz_opaque_callback_data: accepted.body for accepted in cloud.fake.sent}
    assert len(by_id) == len(bodies)
    assert by_id[sent[-1]["id"]]["context"] == {"message_id": inbound["whatsappMessageId"]}
    assert by_id[sent[3]["id"]]["document"]["link"] == "https://example.com/invoice.pdf"
    # The image went to Meta's media endpoint once; both sends used Meta's id.
    assert len(cloud.fake.media) == 1
    assert by_id[sent[1]["id"]]["image"]["id"] == by_id[sent[2]["id"]]["image"]["id"] in cloud.fake.media


@pytest.mark.parametrize(
    ("code", "explanation"),
    [
        (131047, "24 hours"),
        (131026, "not use WhatsApp"),
        (132000, "parameters"),
        (100, "parameter"),
        (131050, "stopped marketing"),
    ],
)
async def test_a_refusal_fails_the_message_with_metas_code_and_what_to_do(cloud, code, explanation):
    await cloud.customer_writes()
    cloud.fake.fail_next(code)
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()
    found = await cloud.message(message["id"])
    assert found["status"] == "failed"
    assert found["error"]["code"] == code
    assert found["error"]["message"]
    assert explanation in found["error"]["explanation"]
    assert cloud.fake.sent == []


async def test_two_send_jobs_for_one_message_send_it_once(cloud, runtime):
    await cloud.customer_writes()
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    async with runtime.database.transaction() as session:
        # As a resumed broadcast may do: a second job for a message whose first hasn't run yet.
        enqueue(
            session, kind=SEND_JOB, payload={"messageId": message["id"]}, organization_id=cloud.tenant.organization_id
        )

    await cloud.settle()

    assert len(cloud.fake.sent_by_callback_data()[message["id"]]) == 1
    assert (await cloud.message(message["id"]))["status"] in ("sent", "delivered", "read")


async def test_a_customer_who_stopped_marketing_on_whatsapp_is_recorded_as_opted_out(cloud, client, tenant):
    await cloud.customer_writes()
    cloud.fake.fail_next(131050)
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()

    contact_id = (await cloud.message(message["id"]))["contactId"]
    contact = (await client.get(f"{API}/contacts/{contact_id}", headers=tenant.headers)).json()
    assert (contact["optedIn"], contact["optedInSource"]) == (False, "whatsapp")
    history = (await client.get(f"{API}/contacts/{contact_id}/opt-in-history", headers=tenant.headers)).json()
    assert [(h["optedIn"], h["source"]) for h in history["data"]] == [(False, "whatsapp")]


@pytest.mark.parametrize(("code", "http_status"), [(130429, 429), (131056, 400), (80007, 400), (4, 400), (131000, 500)])
async def test_throttling_and_server_errors_are_retried_until_sent(cloud, code, http_status):
    await cloud.customer_writes()
    cloud.fake.fail_next(code, http_status=http_status, count=2)
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()
    found = await cloud.message(message["id"])
    assert found["status"] in ("sent", "delivered", "read")
    assert found["error"] is None
    assert len(cloud.fake.sent_by_callback_data()[message["id"]]) == 1


async def test_a_rejected_token_fails_the_send_and_marks_the_connection_down(cloud, client, tenant):
    await cloud.customer_writes()
    cloud.fake.fail_next(190, http_status=401, message="Error validating access token: Session has expired")
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()
    assert (await cloud.message(message["id"]))["error"]["code"] == 190
    status = (await client.get(f"{API}/status", headers=tenant.headers)).json()
    assert status["connected"] is False
    assert "access token" in status["reason"]
    # Reconnecting with a good token brings it back.
    await client.put(f"{API}/connection", json=cloud.connection_body(), headers=tenant.headers)
    assert (await client.get(f"{API}/status", headers=tenant.headers)).json()["connected"] is True


async def test_a_lost_answer_is_never_resent_and_metas_webhook_confirms_it(cloud, runtime):
    await cloud.customer_writes()
    runtime.http = new_http_client(timeout=0.3, connect_timeout=1)
    cloud.fake.set_faults(timeout_seconds=1.0)
    cloud.fake.timeout_next()
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()
    found = await cloud.message(message["id"])
    (accepted,) = cloud.fake.sent_by_callback_data()[message["id"]]
    assert found["whatsappMessageId"] == accepted.wamid
    assert found["status"] in ("sent", "delivered", "read")
    # Later attempts of the job find it confirmed and leave it alone.
    await asyncio.sleep(0.2)
    await cloud.settle()
    assert len(cloud.fake.sent) == 1


async def _lost_in_flight(cloud, message_id: str, *, webhook_after: bool) -> None:
    """As if a worker died after marking the message dispatched and before Meta heard of it."""
    async with cloud.runtime.database.transaction() as session:
        dispatched = now() - timedelta(seconds=cloud.runtime.settings.cloud_api.unconfirmed_send_wait_seconds + 1)
        await session.execute(update(Message).where(Message.id == message_id).values(dispatched_at=dispatched))
        await session.execute(
            update(WhatsAppConnection)
            .where(WhatsAppConnection.organization_id == cloud.tenant.organization_id)
            .values(last_webhook_at=now() if webhook_after else dispatched - timedelta(seconds=5))
        )


async def test_an_unconfirmed_send_is_sent_when_metas_webhooks_show_it_never_arrived(cloud):
    await cloud.customer_writes()
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await _lost_in_flight(cloud, message["id"], webhook_after=True)
    await cloud.settle()
    assert len(cloud.fake.sent_by_callback_data()[message["id"]]) == 1
    assert (await cloud.message(message["id"]))["status"] in ("sent", "delivered", "read")


async def test_an_unconfirmed_send_without_any_webhook_fails_for_a_person_to_decide(cloud):
    await cloud.customer_writes()
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await _lost_in_flight(cloud, message["id"], webhook_after=False)
    await cloud.settle()
    found = await cloud.message(message["id"])
    assert found["status"] == "failed"
    assert "may or may not have reached" in found["error"]["explanation"]
    assert cloud.fake.sent == []


async def test_reading_a_conversation_sends_a_read_receipt(cloud):
    wamid = await cloud.customer_writes("Anyone there?")
    chats = (await cloud.client.get(f"{API}/chats", headers=cloud.tenant.headers)).json()["data"]
    r = await cloud.client.post(f"{API}/chats/{chats[0]['id']}/read", headers=cloud.tenant.headers)
    assert r.status_code == 200, r.text
    await cloud.settle()
    assert cloud.fake.read_receipts == [wamid]


async def test_inbound_media_is_fetched_from_meta_into_our_store(cloud):
    media_id = cloud.fake.add_media(PNG, "image/png", phone_number_id=PHONE_NUMBER_ID)
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550100123", "phone_number_id": PHONE_NUMBER_ID},
                            "contacts": [{"profile": {"name": "Asha"}, "wa_id": CUSTOMER}],
                            "messages": [
                                {
                                    "from": CUSTOMER,
                                    "id": "wamid.inbound-image",
                                    "timestamp": str(int(now().timestamp())),
                                    "type": "image",
                                    "image": {
                                        "id": media_id,
                                        "mime_type": "image/png",
                                        "sha256": hashlib.sha256(PNG).hexdigest(),
                                        "caption": "the broken part",
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await cloud.client.post(
        "/api/webhooks/whatsapp",
        content=body,
        headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    await cloud.settle()
    async with cloud.runtime.database.sessions() as session:
        message = await session.scalar(select(Message).where(Message.whatsapp_message_id == "wamid.inbound-image"))
    assert message is not None
    assert message.content["caption"] == "the broken part"
    download = await cloud.client.get(f"/api/media/{message.content['mediaId']}", headers=cloud.tenant.headers)
    assert download.status_code == 200
    assert download.content == PNG


async def test_with_faults_injected_every_message_ends_sent_or_failed_with_a_reason(runtime, client, tenant, caplog):
    faulty = new_fake(
        error_rate=0.2,
        timeout_rate=0.1,
        timeout_seconds=0.6,
        slow_rate=0.1,
        slow_seconds=0.05,
        failed_status_rate=0.1,
        duplicate_status_rate=0.3,
        reorder_status_rate=0.3,
    )
    runtime.http = new_http_client(timeout=0.3, connect_timeout=1)
    runtime.settings.cloud_api.unconfirmed_send_wait_seconds = 0.5
    caplog.set_level("DEBUG")
    async with cloud_connection(runtime, client, tenant, faulty) as cloud:
        template = {
            "type": "template",
            "templateName": "order_update",
            "language": "en_US",
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#9"}]}
            ],
        }
        sent = [await cloud.send({"to": f"+91987650{number:04d}", **template}) for number in range(40)]
        for _ in range(60):
            await cloud.settle()
            statuses = [(await cloud.message(message["id"]))["status"] for message in sent]
            if "queued" not in statuses:
                break
            await asyncio.sleep(0.2)
        await cloud.settle()
        messages = [await cloud.message(message["id"]) for message in sent]
    accepted = faulty.sent_by_callback_data()
    assert faulty.stats.timeouts, "no timeout was injected"
    assert faulty.stats.refused, "no error was injected"
    for message in messages:
        assert message["status"] in ("sent", "delivered", "read", "failed"), message
        if message["status"] == "failed":
            assert message["error"]["message"], message
            assert message["error"]["explanation"], message
            assert len(accepted.get(message["id"], [])) <= 1, message  # never sent twice either
        else:
            (once,) = accepted[message["id"]]  # Meta got it exactly once
            assert message["whatsappMessageId"] == once.wamid
    assert any(message["status"] == "failed" for message in messages)
    assert TOKEN not in caplog.text
    assert APP_SECRET not in caplog.text


@pytest.mark.parametrize("token", ["EAAG-secret\nline2", "EAAG-secret…", "EAAG secret with spaces"])
async def test_a_token_that_cant_be_a_header_is_refused_without_being_echoed(cloud, client, tenant, token):
    r = await client.put(f"{API}/connection", json=cloud.connection_body(accessToken=token), headers=tenant.headers)
    body = assert_error(r, 400)
    assert "secret" not in body["error"]


async def test_a_429_without_metas_error_body_is_retried(cloud):
    await cloud.customer_writes()
    cloud.fake.fail_next(429, http_status=429, message="Too Many Requests")
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await cloud.settle()
    assert (await cloud.message(message["id"]))["status"] in ("sent", "delivered", "read")


async def test_a_late_confirmation_replaces_our_unconfirmed_failure(cloud):
    await cloud.customer_writes()
    message = await cloud.send({"to": f"+{CUSTOMER}", "type": "text", "text": "Hello"})
    await _lost_in_flight(cloud, message["id"], webhook_after=False)
    await cloud.settle()
    assert (await cloud.message(message["id"]))["error"]["message"] == "Unconfirmed send"
    # Meta's status for it arrives after all (it had the message): the failure gives way.
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550100123", "phone_number_id": PHONE_NUMBER_ID},
                            "statuses": [
                                {
                                    "id": "wamid.late-confirmation",
                                    "status": "delivered",
                                    "timestamp": str(int(now().timestamp())),
                                    "recipient_id": CUSTOMER,
                                    "biz_opaque_callback_data": message["id"],
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = await cloud.client.post("/api/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": signature})
    assert r.status_code == 200, r.text
    await cloud.settle()
    found = await cloud.message(message["id"])
    assert found["status"] == "delivered"
    assert found["whatsappMessageId"] == "wamid.late-confirmation"
    assert found["error"] is None

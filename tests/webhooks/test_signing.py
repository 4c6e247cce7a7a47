"""Signatures a receiver checks with the `standardwebhooks` library: one secret, and two during a rotation.

The clock is real here: the library refuses timestamps more than five minutes from its own clock.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from kaanha import __version__
from kaanha.kit.clock import clock, now
from kaanha.models import Event
from kaanha.testing.fake_graph import BackgroundServer
from kaanha.testing.webhook_receiver import WebhookReceiver
from kaanha.webhooks.dispatcher import WebhookDispatcher
from kaanha.webhooks.signing import event_body, new_secret, signed_headers, signing_secrets
from tests.webhooks.delivery_support import add_endpoint, emit_event, endpoint_row, loopback_only


def test_secrets_are_standard_webhooks_secrets():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert new_secret() != secret
    Webhook(secret)  # the library accepts it as is


def test_a_signed_body_verifies_with_the_library_and_nothing_else():
    secret = new_secret()
    content = orjson.dumps({"id": "evt_1", "type": "contact.created", "timestamp": "2026-11-24T10:00:00Z", "data": {}})
    headers = signed_headers([secret], message_id="evt_1", content=content)

    assert Webhook(secret).verify(content, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(content, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(content.replace(b"evt_1", b"evt_2"), headers)
    assert headers["webhook-id"] == "evt_1"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"Kaanha-Webhooks/{__version__}"


async def test_a_delivery_arrives_signed_with_the_endpoints_secret(runtime, tenant):
    runtime.settings.allow_private_urls = True
    receiver = WebhookReceiver()
    async with BackgroundServer(receiver.app) as server, loopback_only(runtime):
        endpoint_id, secret = await add_endpoint(runtime, tenant.organization_id, f"{server.url}/hooks")
        event_id = await emit_event(runtime, tenant.organization_id, data={"id": "ctc_1", "name": "Asha"})
        assert await WebhookDispatcher(runtime).run_once() == 1

    [received] = receiver.received
    verified = Webhook(secret).verify(received.body, received.headers)
    assert verified["id"] == event_id
    assert verified["type"] == "contact.created"
    assert verified["data"] == {"id": "ctc_1", "name": "Asha"}
    assert received.headers["webhook-id"] == event_id
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"].startswith("Kaanha-Webhooks/")
    assert abs(int(received.headers["webhook-timestamp"]) - now().timestamp()) < 300
    # The bytes sent are exactly the event as webhooks show it.
    async with runtime.database.sessions() as session:
        event = await session.scalar(select(Event).where(Event.id == event_id))
    assert event is not None
    assert received.body == event_body(event)
    assert (await endpoint_row(runtime, endpoint_id)).failing_since is None


async def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(runtime, tenant):
    old, new = new_secret(), new_secret()
    endpoint_id, _ = await add_endpoint(runtime, tenant.organization_id, "https://hooks.example.com/", secret=new)
    endpoint = await endpoint_row(runtime, endpoint_id)
    endpoint.previous_secret_encrypted = runtime.secret_box.encrypt(old)
    content = b'{"id":"evt_1"}'

    # Rotated an hour ago: the old secret signs until 23 hours from now.
    endpoint.previous_secret_expires_at = now() + timedelta(hours=23)
    keys = signing_secrets(endpoint, runtime.secret_box)
    headers = signed_headers(keys, message_id="evt_1", content=content)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    Webhook(new).verify(content, headers)
    Webhook(old).verify(content, headers)

    # Rotated 25 hours ago: the overlap is over.
    endpoint.previous_secret_expires_at = now() - timedelta(hours=1)
    keys = signing_secrets(endpoint, runtime.secret_box)
    headers = signed_headers(keys, message_id="evt_1", content=content)
    assert len(headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(content, headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(old).verify(content, headers)


async def test_retries_keep_the_event_id_and_carry_their_own_timestamp(runtime, tenant, frozen_clock):
    runtime.settings.allow_private_urls = True
    receiver = WebhookReceiver()
    async with BackgroundServer(receiver.app) as server, loopback_only(runtime):
        await add_endpoint(runtime, tenant.organization_id, f"{server.url}/status/503")
        event_id = await emit_event(runtime, tenant.organization_id)
        dispatcher = WebhookDispatcher(runtime)
        await dispatcher.run_once()
        clock.advance(timedelta(seconds=13))
        await dispatcher.run_once()

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 13
    assert first.body == second.body

"""Outgoing webhooks end to end: `kaanha serve` as a process delivers signed events to a real receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from kaanha.testing.fake_graph import BackgroundServer
from kaanha.testing.webhook_receiver import WebhookReceiver
from tests.e2e.test_serve_process import API, CUSTOMER, Server, kaanha, serve_process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    # The receiver listens on 127.0.0.1, which webhook targets may only be with this setting.
    with serve_process(tmp_path_factory.mktemp("webhooks-e2e"), database_url, KAANHA_ALLOW_PRIVATE_URLS="true") as s:
        yield s


def _wait_for(receiver: WebhookReceiver, event_type: str, match: dict[str, Any], server: Server) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for event in receiver.events(event_type):
            if all(event["data"].get(key) == value for key, value in match.items()):
                return event
        time.sleep(0.05)
    got = [(event["type"], event["data"].get("id")) for event in receiver.events()]
    pytest.fail(f"no {event_type} matching {match} within 30 s; received {got}\n{server.output()[-3000:]}")


def test_a_receiver_hears_an_inbound_message_and_the_delivery_of_a_reply(server: Server) -> None:
    receiver = WebhookReceiver()
    with BackgroundServer(receiver.app) as listening, server.client() as client:
        created = client.post(
            f"{API}/webhooks",
            json={"url": f"{listening.url}/hooks", "events": ["message.received", "message.delivered"]},
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]

        done = kaanha(server.env, "sandbox", "receive", "--org", "E2E Shop", "--from", CUSTOMER, "--text", "hello?")
        assert done.returncode == 0, done.stderr
        received = _wait_for(receiver, "message.received", {"direction": "inbound"}, server)
        assert received["data"]["content"]["text"] == "hello?"

        sent = client.post(f"{API}/send", json={"to": CUSTOMER, "type": "text", "text": "Hi! How can we help?"})
        assert sent.status_code == 201, sent.text
        delivered = _wait_for(receiver, "message.delivered", {"id": sent.json()["id"]}, server)
        assert delivered["data"]["status"] in ("delivered", "read")

        # The log records an attempt once the receiver has answered: wait for it as a person would.
        logged: set[str] = set()
        deadline = time.monotonic() + 30
        while not logged >= {"message.received", "message.delivered"} and time.monotonic() < deadline:
            attempts = client.get(f"{API}/webhooks/{created.json()['id']}/deliveries")
            assert attempts.status_code == 200, attempts.text
            logged = {row["eventType"] for row in attempts.json()["data"] if row["success"]}
            time.sleep(0.05)
    assert logged >= {"message.received", "message.delivered"}
    # Every delivery was signed with the endpoint's secret, and nothing it didn't ask for arrived.
    assert all(item.verified for item in receiver.received)
    assert {event["type"] for event in receiver.events()} <= {"message.received", "message.delivered"}
    assert received["id"].startswith("evt_")
    assert received["timestamp"].endswith("Z")

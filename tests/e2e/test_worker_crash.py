"""A worker process killed mid-batch: every queued message still reaches Meta, and exactly once.

Real processes: `kaanha serve --no-workers` receives the fake Graph API's webhooks, `kaanha worker`
processes send. The fake answers each send 40 ms after accepting it, so the SIGKILL lands while
answers are in flight: those sends are "in doubt", and must be settled by Meta's status webhook
(matched by `biz_opaque_callback_data`) rather than sent again.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kaanha.testing.fake_graph import FakeGraphAPI, FakeGraphServer
from tests.e2e.processes import crash_test_database, start, stop, wait_for
from tests.e2e.test_serve_process import API, free_port, kaanha, kaanha_json

TOKEN = "EAAG-crash-test-token"
APP_SECRET = "crash-test-app-secret"
PHONE_NUMBER_ID = "106540352240001"
WABA_ID = "102290129340001"
MESSAGES = 150


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with crash_test_database(tmp_path, prefix="kaanha_crash") as url:
        yield url


@pytest.fixture
def fake() -> Iterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI(
        access_token=TOKEN,
        app_secret=APP_SECRET,
        throughput_per_second=10_000,
        status_delay_seconds=0.05,
        slow_rate=1.0,
        slow_seconds=0.04,
        seed=11,
    )
    fake.add_phone_number(
        PHONE_NUMBER_ID, display_phone_number="15550100001", verified_name="Crash Co", waba_id=WABA_ID
    )
    fake.add_template(
        WABA_ID,
        name="order_update",
        language="en_US",
        category="UTILITY",
        components=[
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["A", "B"]]},
            }
        ],
    )
    with FakeGraphServer(fake) as server:
        yield fake, server.url


def test_killing_a_worker_mid_batch_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, database_url: str, fake: tuple[FakeGraphAPI, str]
) -> None:
    graph, graph_url = fake
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAANHA_")}
    env.update(
        KAANHA_DATA_DIR=str(tmp_path / "data"),
        KAANHA_DATABASE_URL=database_url,
        KAANHA_GRAPH_API_URL=graph_url,
        KAANHA_RATE_LIMITS__API="100000/minute",
        KAANHA_RATE_LIMITS__PER_RECIPIENT="1000/hour",
        # Short so the test is quick: a dead worker's jobs are taken over after 3 s, and an unconfirmed
        # send waits 2 s for Meta's webhook before anything is decided.
        KAANHA_JOB_LEASE_SECONDS="3",
        KAANHA_CLOUD_API__UNCONFIRMED_SEND_WAIT_SECONDS="2",
        KAANHA_CLOUD_API__REQUEST_TIMEOUT_SECONDS="1",
        KAANHA_CLOUD_API__CONNECT_TIMEOUT_SECONDS="0.5",
    )
    log = tmp_path / "processes.log"
    organization = kaanha_json(env, "orgs", "create", "Crash Co")
    key = kaanha_json(env, "keys", "create", "--org", organization["id"], "--name", "crash")
    connected = kaanha(
        env,
        "connect", "cloud-api", "--org", organization["id"], "--phone-number-id", PHONE_NUMBER_ID,
        "--waba-id", WABA_ID, "--access-token", TOKEN, "--app-secret", APP_SECRET, "--verify-token", "verify-crash",
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    graph.callback_url = f"{base}/api/webhooks/whatsapp"
    serve = start(env, log, "serve", "--no-workers", "--port", str(port))
    workers: list[subprocess.Popen[bytes]] = []
    headers = {"Authorization": f"Bearer {key['key']}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:

            def ready() -> bool:
                try:
                    return client.get(f"{API}/status").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, "kaanha serve", log)
            sent_ids = []
            for number in range(MESSAGES):
                body = {
                    "to": f"+9198765{number:05d}",
                    "type": "template",
                    "templateName": "order_update",
                    "language": "en_US",
                    "components": [
                        {
                            "type": "body",
                            "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "#1"}],
                        }
                    ],
                }
                response = client.post(f"{API}/send", json=body)
                assert response.status_code == 201, response.text
                sent_ids.append(response.json()["id"])

            first = start(env, log, "worker")
            workers.append(first)
            wait_for(lambda: len(graph.sent) >= MESSAGES // 4, 60, "the first worker to send a quarter", log)
            first.send_signal(signal.SIGKILL)
            first.wait()
            accepted_at_kill = len(graph.sent)
            assert accepted_at_kill < MESSAGES, "the worker finished before it could be killed"

            workers += [start(env, log, "worker"), start(env, log, "worker")]

            def all_settled() -> bool:
                statuses = {client.get(f"{API}/messages/{id_}").json()["status"] for id_ in sent_ids[-5:]}
                if "queued" in statuses:
                    return False
                return all(client.get(f"{API}/messages/{id_}").json()["status"] != "queued" for id_ in sent_ids)

            wait_for(all_settled, 120, "every message to leave the queue", log)
            messages = [client.get(f"{API}/messages/{id_}").json() for id_ in sent_ids]
    finally:
        for process in [*workers, serve]:
            stop(process)

    accepted = graph.sent_by_callback_data()
    duplicates = {id_: len(accepted.get(id_, [])) for id_ in sent_ids if len(accepted.get(id_, [])) != 1}
    assert duplicates == {}, f"sent other than exactly once: {duplicates}"
    for message in messages:
        assert message["status"] in ("sent", "delivered", "read"), message
        assert message["whatsappMessageId"] == accepted[message["id"]][0].wamid

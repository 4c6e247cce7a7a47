"""A worker killed twice during a 5,000-recipient broadcast: every recipient still gets exactly one message.

Real processes, as in test_worker_crash.py: the fake Graph API (in this process, so its record of
accepted sends can be read), `kaanha serve --no-workers` for the API and the fake's signed status
webhooks, and `kaanha worker` processes that dispatch the broadcast and send its messages. The fake
answers every send 40 ms after accepting it, and each SIGKILL comes within milliseconds of a send
being accepted, so sends are in flight when the worker dies: those are "in doubt" and must be settled
by Meta's status webhook (matched by `biz_opaque_callback_data`), never sent again. The dispatch job,
killed mid-way too, must go on from the recipients still `pending`, so no one is skipped or queued twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, insert, select
from sqlalchemy.engine import make_url

from kaanha.kit.ids import new_id
from kaanha.models import Contact, ContactTag, Message
from kaanha.testing.fake_graph import FakeGraphAPI, FakeGraphServer
from tests.e2e.processes import crash_test_database, start, stop, wait_for
from tests.e2e.test_serve_process import API, free_port, kaanha, kaanha_json

TOKEN = "EAAG-broadcast-crash-token"
APP_SECRET = "broadcast-crash-app-secret"
PHONE_NUMBER_ID = "106540352240002"
WABA_ID = "102290129340002"
RECIPIENTS = 5000
# Contacts outside the audience: none of them may get anything.
BYSTANDERS = 50
FIRST_KILL_AT = 1000
SECOND_KILL_AT = 3000
MESSAGES_PER_SECOND = 1000


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with crash_test_database(tmp_path, prefix="kaanha_broadcast_crash") as url:
        yield url


@pytest.fixture
def fake() -> Iterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI(
        access_token=TOKEN,
        app_secret=APP_SECRET,
        throughput_per_second=100_000,
        status_delay_seconds=0.05,
        # Statuses of many messages to a POST, as Meta batches them under load: one job applies a
        # batch, where a POST a status would cost the worker as much as the sends themselves.
        webhook_batch_size=200,
        webhook_batch_interval_seconds=0.25,
        slow_rate=1.0,
        slow_seconds=0.04,
        seed=12,
    )
    fake.add_phone_number(
        PHONE_NUMBER_ID, display_phone_number="15550100002", verified_name="Crash Broadcasts", waba_id=WABA_ID
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


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The same database through a synchronous driver, beside the processes' async engines."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url.set(drivername="sqlite"))
    else:
        engine = create_engine(url.set(drivername="postgresql+psycopg"), pool_size=1)
    yield engine
    engine.dispose()


def _seed_contacts(engine: Engine, organization_id: str) -> tuple[list[str], list[str]]:
    """RECIPIENTS contacts tagged `crash` and BYSTANDERS untagged, in bulk; returns both lists of phones."""
    moment = datetime.now(UTC)
    contacts: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    for number in range(RECIPIENTS + BYSTANDERS):
        contact_id = new_id("ctc")
        contacts.append(
            {
                "id": contact_id,
                "organization_id": organization_id,
                "phone": f"+9190{number:08d}",
                "name": f"Customer {number}",
                "email": None,
                "opted_in": False,
                "opted_in_changed_at": None,
                "attributes": {"order": f"#{number}"},
                "last_message_at": None,
                "last_inbound_at": None,
                "created_at": moment,
                "updated_at": moment,
            }
        )
        if number < RECIPIENTS:
            tags.append({"organization_id": organization_id, "contact_id": contact_id, "tag": "crash"})
    with engine.begin() as connection:
        connection.execute(insert(Contact), contacts)
        connection.execute(insert(ContactTag), tags)
    phones = [row["phone"] for row in contacts]
    return phones[:RECIPIENTS], phones[RECIPIENTS:]


def _in_doubt(engine: Engine, broadcast_id: str) -> int:
    """Messages handed to WhatsApp whose answer was never recorded (the dead worker's sends in flight)."""
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).where(
                Message.broadcast_id == broadcast_id,
                Message.status == "queued",
                Message.dispatched_at.is_not(None),
            )
        )
    return int(count or 0)


def _kill_after(graph: FakeGraphAPI, worker: subprocess.Popen[bytes], sends: int, log: Path) -> int:
    """SIGKILL `worker` as soon as the fake has accepted `sends` sends (its answers are then in flight)."""
    wait_for(lambda: len(graph.sent) >= sends, 240, f"{sends:,} sends to reach the fake", log, every=0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    accepted = len(graph.sent)
    assert accepted < RECIPIENTS, "the broadcast finished before the worker could be killed"
    return accepted


def test_killing_workers_mid_broadcast_sends_each_recipient_exactly_one_message(
    tmp_path: Path, database_url: str, engine: Engine, fake: tuple[FakeGraphAPI, str]
) -> None:
    graph, graph_url = fake
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAANHA_")}
    env.update(
        KAANHA_DATA_DIR=str(tmp_path / "data"),
        KAANHA_DATABASE_URL=database_url,
        KAANHA_GRAPH_API_URL=graph_url,
        KAANHA_RATE_LIMITS__API="100000/minute",
        # Short so the test is quick: a dead worker's jobs (the dispatch job and its sends) are taken
        # over after 3 s, and an unconfirmed send waits 4 s for Meta's webhook before anything is decided.
        KAANHA_JOB_LEASE_SECONDS="3",
        KAANHA_CLOUD_API__UNCONFIRMED_SEND_WAIT_SECONDS="4",
        KAANHA_CLOUD_API__REQUEST_TIMEOUT_SECONDS="1",
        KAANHA_CLOUD_API__CONNECT_TIMEOUT_SECONDS="0.5",
        # More sends in flight when a worker dies (30 = the PostgreSQL pool of a process, 10 + 20 overflow).
        KAANHA_WORKER_CONCURRENCY="30",
        # An INFO line for every request to the fake would be most of the log, and slow the worker.
        KAANHA_LOG_LEVEL="WARNING",
    )
    log = tmp_path / "processes.log"
    organization = kaanha_json(env, "orgs", "create", "Crash Broadcasts", "--plan", "pro")
    key = kaanha_json(env, "keys", "create", "--org", organization["id"], "--name", "crash")
    connected = kaanha(
        env,
        "connect", "cloud-api", "--org", organization["id"], "--phone-number-id", PHONE_NUMBER_ID,
        "--waba-id", WABA_ID, "--access-token", TOKEN, "--app-secret", APP_SECRET, "--verify-token", "verify-crash",
        "--messages-per-second", str(MESSAGES_PER_SECOND),
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    recipients, bystanders = _seed_contacts(engine, organization["id"])

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    graph.callback_url = f"{base}/api/webhooks/whatsapp"
    serve = start(env, log, "serve", "--no-workers", "--port", str(port))
    workers: list[subprocess.Popen[bytes]] = []
    headers = {"Authorization": f"Bearer {key['key']}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

            def ready() -> bool:
                try:
                    return client.get(f"{API}/status").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, "kaanha serve", log)
            synced = client.post(f"{API}/templates/sync")
            assert synced.status_code == 200, synced.text
            created = client.post(
                f"{API}/broadcasts",
                json={
                    "name": "Crash test",
                    "templateName": "order_update",
                    "language": "en_US",
                    "components": [
                        {
                            "type": "body",
                            "parameters": [
                                {"type": "text", "text": "{{contact.name|there}}"},
                                {"type": "text", "text": "{{contact.attributes.order|your order}}"},
                            ],
                        }
                    ],
                    "audience": {"tags": ["crash"]},
                },
            )
            assert created.status_code == 201, created.text
            broadcast_id = created.json()["id"]
            assert created.json()["counts"]["total"] == RECIPIENTS

            workers.append(start(env, log, "worker"))
            first_kill = _kill_after(graph, workers[-1], FIRST_KILL_AT, log)
            in_doubt = _in_doubt(engine, broadcast_id)
            workers.append(start(env, log, "worker"))
            second_kill = _kill_after(graph, workers[-1], SECOND_KILL_AT, log)
            in_doubt += _in_doubt(engine, broadcast_id)
            workers.append(start(env, log, "worker"))

            def completed() -> bool:
                response = client.get(f"{API}/broadcasts/{broadcast_id}")
                assert response.status_code == 200, response.text
                assert response.json()["status"] in ("running", "completed"), response.json()
                return bool(response.json()["status"] == "completed")

            wait_for(completed, 600, "the broadcast to complete", log, every=0.5)
            broadcast = client.get(f"{API}/broadcasts/{broadcast_id}").json()
            failed = client.get(f"{API}/broadcasts/{broadcast_id}/recipients", params={"status": "failed"}).json()
    finally:
        for process in [*workers, serve]:
            stop(process)

    with engine.connect() as connection:
        wamids = dict(
            connection.execute(
                select(Message.id, Message.whatsapp_message_id).where(Message.broadcast_id == broadcast_id)
            ).all()
        )

    assert FIRST_KILL_AT <= first_kill < SECOND_KILL_AT <= second_kill < RECIPIENTS
    # Each kill came a few milliseconds after a send was accepted and 40 ms before its answer.
    assert in_doubt > 0, "no send was in flight when the workers died: the in-doubt path went untested"
    per_phone = Counter(message.to for message in graph.sent)
    assert set(per_phone) == {phone.removeprefix("+") for phone in recipients}
    assert {phone: n for phone, n in per_phone.items() if n != 1} == {}, "some recipients got more than one message"
    assert not {phone.removeprefix("+") for phone in bystanders} & set(per_phone)
    accepted = graph.sent_by_callback_data()
    assert set(accepted) == set(wamids), "the fake's sends and the broadcast's messages differ"
    assert all(wamids[message_id] == sends[0].wamid for message_id, sends in accepted.items())
    counts = broadcast["counts"]
    assert (counts["total"], counts["sent"], counts["failed"]) == (RECIPIENTS, RECIPIENTS, 0), counts
    assert (counts["queued"], counts["skipped"], counts["cancelled"]) == (0, 0, 0), counts
    assert broadcast["progress"] == 1.0
    assert failed["pagination"]["total"] == 0, failed

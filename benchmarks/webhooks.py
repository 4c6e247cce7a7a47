"""The outgoing-webhooks scenario of `make bench`: deliveries/s to healthy endpoints, with and without a hanging one.

Each run has a fresh database and organization (CLI), `KAANHA_ALLOW_PRIVATE_URLS=true` so that loopback
targets are accepted, and a receiver of its own (benchmarks/receiver.py, its own process). Its webhook
endpoints are created through the REST API (`POST /webhooks`, events ["*"]) on `kaanha serve
--no-workers`, which is stopped again; then N `message.received` events (data: a message as the API
shows it) are seeded in bulk, each with one pending delivery per endpoint, as `emit` leaves them, but not
due for a year. One `kaanha worker` (its webhook dispatcher, default settings) is started and seen
working: a probe delivery to a separate endpoint must succeed. Then every seeded delivery falls due at
once, and deliveries/s runs from then until the last delivery to a healthy endpoint has succeeded (its
`finished_at`). The deliveries to a hanging endpoint are still pending then, as expected: only the
healthy ones are waited for.

Runs: one endpoint answering 200 at once (`/ok/1`); ten of them; nine of them beside one answering only
after 10 s (`/hang`). The issue's figure is the healthy rate with the hanging endpoint over the rate
without it (the ten healthy ones: each event is owed to ten endpoints in both).

Checked afterwards: every healthy endpoint has N succeeded deliveries, N successful attempts and
received N distinct `webhook-id`s; arrivals beyond that (a delivery sent again) and failed attempts are
reported with their errors. The receiver's own first/last arrival times give a second rate, and the
longest pause between two successes shows a stall that an average would hide.

The receiver's ceiling: the load generator POSTs signed events straight at it, with no Kaanha in the way.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, text, update

from benchmarks.bodies import message_event_data
from benchmarks.loadgen import LoadSpec
from benchmarks.processes import (
    HOST,
    BenchmarkError,
    bare_env,
    check_alive,
    children_cpu_seconds,
    cpu_seconds,
    free_port,
    kaanha_env,
    kaanha_json,
    kaanha_server,
    kaanha_worker,
    load,
    log,
    running,
    scratch_database,
    started,
    webhook_receiver,
    workspace,
)
from benchmarks.whatsapp import _scalar, _sync_engine
from kaanha.events.types import MESSAGE_RECEIVED
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Event, WebhookAttempt, WebhookDelivery

API = "/api/whatsapp-api"
PROBE_PATH = "/probe"
HANG_PATH = "/hang"
OK_ALL = "/ok/*"
CHUNK = 5000
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 10.0
# The seeded deliveries fall due this long after the release, past an idle dispatcher's next look.
RELEASE_LEAD_SECONDS = 1.5


@dataclass(frozen=True)
class WebhookOptions:
    events: int
    endpoints: int
    hang_seconds: float
    connections: int
    ceiling_duration: float
    settle_timeout: float


@dataclass(frozen=True)
class Run:
    name: str
    healthy: int
    hanging: int

    @property
    def label(self) -> str:
        healthy = f"{self.healthy} /ok"
        return f"{healthy} + {self.hanging} /hang" if self.hanging else healthy

    @property
    def paths(self) -> list[str]:
        return [f"/ok/{index + 1}" for index in range(self.healthy)] + [HANG_PATH] * self.hanging


def runs(options: WebhookOptions) -> list[Run]:
    return [
        Run("one", 1, 0),
        Run("healthy", options.endpoints, 0),
        Run("hanging", options.endpoints - 1, 1),
    ]


def run_webhooks(backend: str, admin_url: str | None, options: WebhookOptions) -> list[dict[str, Any]]:
    """One row per run; a failed run is a row with its `error` (and no figures), the others go on.

    The hanging run's row gets `healthyRatio`: its healthy rate over the all-healthy run's.
    """
    results = []
    for run in runs(options):
        try:
            results.append(_run(backend, admin_url, run, options))
        except BenchmarkError as error:
            log(f"[{backend}] webhooks, {run.label} FAILED: {error}")
            results.append(
                {
                    "backend": backend,
                    "scenario": "webhooks",
                    "run": run.name,
                    "endpoints": run.label,
                    "events": options.events,
                    "error": str(error),
                }
            )
    rates = {row["run"]: row["deliveriesPerSecond"] for row in results if "error" not in row}
    if rates.get("hanging") and rates.get("healthy"):
        ratio = rates["hanging"] / rates["healthy"]
        next(row for row in results if row["run"] == "hanging")["healthyRatio"] = ratio
        log(f"[{backend}] webhooks: the healthy endpoints' rate with one hanging / without: {ratio:.2f}")
    return results


def _run(backend: str, admin_url: str | None, run: Run, options: WebhookOptions) -> dict[str, Any]:
    label = f"[{backend}] webhooks, {run.label}"
    count = options.events
    healthy_target = count * run.healthy
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        env = {**kaanha_env(folder / "data", database_url), "KAANHA_ALLOW_PRIVATE_URLS": "true"}
        organization = kaanha_json(["orgs", "create", "Webhooks Bench", "--plan", "pro"], env)
        organization_id = str(organization["id"])
        key = kaanha_json(["keys", "create", "--org", organization_id, "--name", "bench"], env)
        headers = {"Authorization": f"Bearer {key['key']}"}
        receiver_port = free_port()
        receiver_url = f"http://{HOST}:{receiver_port}"
        engine = _sync_engine(database_url)
        try:
            with ExitStack() as stack:
                receiver_log = folder / "receiver.log"
                receiver = stack.enter_context(
                    running(
                        webhook_receiver(receiver_port, hang_seconds=options.hang_seconds),
                        env=bare_env(),
                        log=receiver_log,
                        ready_url=f"{receiver_url}/stats",
                        headers={},
                    )
                )
                probe_id, *endpoint_ids = _create_endpoints(
                    env, folder, headers, [receiver_url + path for path in [PROBE_PATH, *run.paths]]
                )
                healthy_ids = endpoint_ids[: run.healthy]
                hanging_ids = endpoint_ids[run.healthy :]
                started_seed = time.perf_counter()
                _seed(engine, organization_id, endpoint_ids, count)
                log(
                    f"{label}: seeded {count:,} events and {count * len(endpoint_ids):,} deliveries "
                    f"in {time.perf_counter() - started_seed:.1f} s"
                )
                worker_log = folder / "worker.log"
                worker = stack.enter_context(started(kaanha_worker(), env=env, log=worker_log))
                processes = [(receiver, receiver_log, "the receiver"), (worker, worker_log, "kaanha worker")]
                probed = _probe(engine, organization_id, probe_id, processes)
                log(f"{label}: the worker delivered a probe {probed:.1f} s after starting")
                cpu_before = _cpu(processes)
                due = _release(engine, endpoint_ids)
                _wait_for_deliveries(engine, healthy_ids, healthy_target, label, due, options.settle_timeout, processes)
                cpu = _cpu_delta(cpu_before, _cpu(processes))
                load_average = os.getloadavg()[0]
                stats: dict[str, Any] = httpx.get(f"{receiver_url}/stats", timeout=10).json()
                database = _summary(engine, healthy_ids, hanging_ids)
        finally:
            engine.dispose()
    return {**_result(backend, run, options, label, due, stats, database, cpu), "loadAverage": load_average}


def _create_endpoints(env: dict[str, str], folder: Path, headers: dict[str, str], urls: list[str]) -> list[str]:
    """`POST /webhooks` for each URL (all events) on `kaanha serve --no-workers`; returns their ids in order."""
    port = free_port()
    base = f"http://{HOST}:{port}{API}"
    ids = []
    with (
        running(kaanha_server(port), env=env, log=folder / "kaanha.log", ready_url=f"{base}/status", headers=headers),
        httpx.Client(headers=headers, timeout=30) as client,
    ):
        for index, url in enumerate(urls):
            body = {"url": url, "events": ["*"], "description": f"bench endpoint {index}"}
            response = client.post(f"{base}/webhooks", json=body)
            if response.status_code != 201:
                raise BenchmarkError(f"POST {API}/webhooks {body} answered {response.status_code}: {response.text}")
            ids.append(str(response.json()["id"]))
    return ids


def _seed(engine: Engine, organization_id: str, endpoint_ids: Sequence[str], count: int) -> None:
    """`count` message.received events, each with a pending delivery per endpoint, not due for a year."""
    rng = random.Random(2026)
    moment = now()
    later = moment + timedelta(days=365)
    stamp = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        event_id = new_id("evt")
        events.append(
            {
                "id": event_id,
                "organization_id": organization_id,
                "type": MESSAGE_RECEIVED,
                "data": message_event_data(number, rng, stamp),
                "created_at": moment,
            }
        )
        deliveries += [
            {
                "id": new_id("whd"),
                "organization_id": organization_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "event_type": MESSAGE_RECEIVED,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": later,
                "created_at": moment,
            }
            for endpoint_id in endpoint_ids
        ]
    with engine.begin() as connection:
        for model, rows in ((Event, events), (WebhookDelivery, deliveries)):
            for offset in range(0, len(rows), CHUNK):
                connection.execute(insert(model), rows[offset : offset + CHUNK])
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for table in ("events", "webhook_deliveries"):
                connection.execute(text(f"ANALYZE {table}"))


def _probe(engine: Engine, organization_id: str, endpoint_id: str, processes: list[tuple[Any, Path, str]]) -> float:
    """One delivery due now to the probe endpoint; return how long it took to succeed (worker start-up included)."""
    started_at = time.monotonic()
    event_id, delivery_id = new_id("evt"), new_id("whd")
    moment = now()
    with engine.begin() as connection:
        connection.execute(
            insert(Event).values(
                id=event_id,
                organization_id=organization_id,
                type=MESSAGE_RECEIVED,
                data=message_event_data(0, random.Random(0), moment.isoformat(timespec="seconds")),
                created_at=moment,
            )
        )
        connection.execute(
            insert(WebhookDelivery).values(
                id=delivery_id,
                organization_id=organization_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=MESSAGE_RECEIVED,
                status="pending",
                attempts=0,
                next_attempt_at=moment,
                created_at=moment,
            )
        )
    deadline = started_at + 60
    status = None
    while time.monotonic() < deadline:
        for process, log_file, name in processes:
            check_alive(process, log_file, name)
        status = _scalar_text(engine, select(WebhookDelivery.status).where(WebhookDelivery.id == delivery_id))
        if status == "succeeded":
            return time.monotonic() - started_at
        time.sleep(0.05)
    raise BenchmarkError(f"the probe delivery is still {status!r} after 60 s: is the webhook dispatcher running?")


def _scalar_text(engine: Engine, query: Any) -> str | None:
    with engine.connect() as connection:
        value = connection.scalar(query)
    return None if value is None else str(value)


def _release(engine: Engine, endpoint_ids: Sequence[str]) -> float:
    """Make every seeded delivery due a moment from now; return that time.

    On PostgreSQL the table is analyzed again: statistics from the seeding would still say that nothing
    falls due for a year, and plan every claim for one row (autovacuum would catch up within a minute).
    """
    due = now() + timedelta(seconds=RELEASE_LEAD_SECONDS)
    with engine.begin() as connection:
        connection.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id.in_(endpoint_ids), WebhookDelivery.status == "pending")
            .values(next_attempt_at=due)
        )
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE webhook_deliveries"))
    if now().timestamp() > due.timestamp() - 0.5:
        raise BenchmarkError("releasing the deliveries took longer than the lead they were given")
    return due.timestamp()


def _succeeded(endpoint_ids: Sequence[str]) -> Any:
    return (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id.in_(endpoint_ids), WebhookDelivery.status == "succeeded")
    )


def _wait_for_deliveries(
    engine: Engine,
    endpoint_ids: Sequence[str],
    target: int,
    label: str,
    due: float,
    timeout: float,
    processes: list[tuple[Any, Path, str]],
) -> None:
    """Poll until `target` deliveries to `endpoint_ids` have succeeded, with a progress line every few seconds.

    Fails when a process exits, or when the count has not moved for `timeout` seconds.
    """
    query = _succeeded(endpoint_ids)
    last, moved_at, reported_at = -1, time.monotonic(), time.monotonic()
    while True:
        value = _scalar(engine, query)
        if value >= target:
            return
        if value != last:
            last, moved_at = value, time.monotonic()
        elif time.monotonic() - moved_at > timeout:
            raise BenchmarkError(f"{label}: healthy deliveries stuck at {value:,} of {target:,} for {timeout:g} s")
        if time.monotonic() - reported_at >= PROGRESS_SECONDS:
            reported_at = time.monotonic()
            elapsed = time.time() - due
            rate = value / elapsed if elapsed > 0 else 0.0
            log(f"  {label}: {value:>9,}/{target:,} delivered, {rate:,.0f}/s so far")
        for process, log_file, name in processes:
            check_alive(process, log_file, name)
        time.sleep(POLL_SECONDS)


def _summary(engine: Engine, healthy_ids: Sequence[str], hanging_ids: Sequence[str]) -> dict[str, Any]:
    """What the database says at the end: deliveries and attempts per endpoint, errors, success times."""
    kind = dict.fromkeys(healthy_ids, "healthy") | dict.fromkeys(hanging_ids, "hanging")
    endpoints = list(kind)
    with engine.connect() as connection:
        deliveries = connection.execute(
            select(
                WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count(), func.sum(WebhookDelivery.attempts)
            )
            .where(WebhookDelivery.endpoint_id.in_(endpoints))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        ).all()
        attempts = connection.execute(
            select(WebhookAttempt.endpoint_id, WebhookAttempt.succeeded, func.count())
            .where(WebhookAttempt.endpoint_id.in_(endpoints))
            .group_by(WebhookAttempt.endpoint_id, WebhookAttempt.succeeded)
        ).all()
        errors = connection.execute(
            select(WebhookAttempt.endpoint_id, WebhookAttempt.status_code, WebhookAttempt.error, func.count())
            .where(WebhookAttempt.endpoint_id.in_(endpoints), WebhookAttempt.succeeded.is_(False))
            .group_by(WebhookAttempt.endpoint_id, WebhookAttempt.status_code, WebhookAttempt.error)
            .order_by(func.count().desc())
        ).all()
        finished = sorted(
            moment.timestamp()
            for moment in connection.scalars(
                select(WebhookDelivery.finished_at).where(
                    WebhookDelivery.endpoint_id.in_(healthy_ids), WebhookDelivery.status == "succeeded"
                )
            )
            if moment is not None
        )
        durations = connection.execute(
            select(func.avg(WebhookAttempt.duration_ms), func.max(WebhookAttempt.duration_ms)).where(
                WebhookAttempt.endpoint_id.in_(healthy_ids), WebhookAttempt.succeeded.is_(True)
            )
        ).one()
    by_endpoint: dict[str, dict[str, Any]] = {
        endpoint_id: {"kind": kind[endpoint_id], "deliveries": {}, "attempts": 0, "succeededAttempts": 0}
        for endpoint_id in endpoints
    }
    for endpoint_id, status, total, _ in deliveries:
        by_endpoint[endpoint_id]["deliveries"][status] = total
    for endpoint_id, succeeded, total in attempts:
        by_endpoint[endpoint_id]["attempts"] += total
        if succeeded:
            by_endpoint[endpoint_id]["succeededAttempts"] += total
    return {
        "endpoints": by_endpoint,
        "errors": [
            {"kind": kind[endpoint_id], "statusCode": code, "error": error, "count": total}
            for endpoint_id, code, error, total in errors[:10]
        ],
        "failedAttempts": {
            group: sum(total for endpoint_id, _, _, total in errors if kind[endpoint_id] == group)
            for group in ("healthy", "hanging")
        },
        "finished": finished,
        "healthyAttemptMs": {"mean": float(durations[0] or 0), "max": int(durations[1] or 0)},
    }


def _result(
    backend: str,
    run: Run,
    options: WebhookOptions,
    label: str,
    due: float,
    stats: dict[str, Any],
    database: dict[str, Any],
    cpu: dict[str, float],
) -> dict[str, Any]:
    count = options.events
    finished: list[float] = database.pop("finished")
    healthy_paths = run.paths[: run.healthy]
    problems = []
    for endpoint_id, endpoint in database["endpoints"].items():
        if endpoint["kind"] != "healthy":
            continue
        if endpoint["deliveries"] != {"succeeded": count} or endpoint["succeededAttempts"] != count:
            problems.append(
                f"endpoint {endpoint_id}: deliveries by status {endpoint['deliveries']}, "
                f"{endpoint['succeededAttempts']:,} successful attempts, for {count:,} events"
            )
    for path in healthy_paths:
        received = stats.get(path, {})
        if received.get("distinctIds") != count:
            problems.append(
                f"the receiver got {received.get('distinctIds', 0):,} distinct ids at {path}, not {count:,}"
            )
    if len(finished) != count * run.healthy:
        problems.append(f"{len(finished):,} successes with a finish time, not {count * run.healthy:,}")
    if problems:
        raise BenchmarkError(f"{label}: " + "; ".join(problems))
    deliveries = count * run.healthy
    seconds = finished[-1] - due
    rate = deliveries / seconds if seconds > 0 else 0.0
    received = stats.get(OK_ALL, {})
    arrivals = sum(stats[path]["arrivals"] for path in healthy_paths)
    window = received["last"] - received["first"] if received else 0.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(finished)]
    hang = stats.get(HANG_PATH)
    failed = database["failedAttempts"]
    cpu_text = ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
    log(
        f"{label}: {deliveries:,} deliveries succeeded {seconds:.1f} s after falling due: {rate:,.0f}/s; "
        f"first arrival after {received['first'] - due:.2f} s, longest pause {max(gaps, default=0.0):.2f} s; "
        f"failed attempts: {failed['healthy']:,} healthy, {failed['hanging']:,} hanging; CPU seconds {cpu_text}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if hang:
        hanging_errors = [row for row in database["errors"] if row["kind"] == "hanging"]
        log(
            f"{label}: /hang got {hang['arrivals']:,} requests, {hang['maxInFlight']} at once at most, "
            f"{hang['inFlight']} still open at the end; its failed attempts: "
            + (", ".join(f"{row['error']} ({row['count']:,})" for row in hanging_errors) or "none")
        )
    return {
        "backend": backend,
        "scenario": "webhooks",
        "run": run.name,
        "endpoints": run.label,
        "healthyEndpoints": run.healthy,
        "hangingEndpoints": run.hanging,
        "events": count,
        "deliveries": deliveries,
        "seconds": seconds,
        "deliveriesPerSecond": rate,
        # Less sensitive to other work on the machine than the rate: what each delivery cost the worker.
        "deliveriesPerWorkerCpuSecond": deliveries / cpu["worker"] if cpu["worker"] > 0 else 0.0,
        "firstArrivalSeconds": received["first"] - due,
        "longestPauseSeconds": max(gaps, default=0.0),
        "receiverDeliveriesPerSecond": (received["arrivals"] - 1) / window if window > 0 else 0.0,
        "resentToHealthy": arrivals - deliveries,
        "failedAttempts": database["failedAttempts"],
        "healthyAttemptMs": database["healthyAttemptMs"],
        "hangRequests": hang["arrivals"] if hang else 0,
        "hangMaxInFlight": hang["maxInFlight"] if hang else 0,
        # Answered by the receiver after its wait; Kaanha's own timeout of the same length usually came first.
        "hangAnsweredByReceiver": hang["answered"] if hang else 0,
        "errors": database["errors"],
        "database": database["endpoints"],
        "receiver": stats,
        "cpuSeconds": cpu,
    }


def _cpu(processes: list[tuple[Any, Path, str]]) -> dict[str, float]:
    return {name.removeprefix("the ").removeprefix("kaanha "): cpu_seconds(process) for process, _, name in processes}


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 2) for name in after}


# --- the receiver alone -----------------------------------------------------------------------------------


def run_receiver_ceiling(options: WebhookOptions) -> dict[str, Any]:
    """Signed event POSTs straight at benchmarks/receiver.py from the load generator: what it can take."""
    with workspace() as folder:
        port = free_port()
        with running(
            webhook_receiver(port, hang_seconds=options.hang_seconds),
            env=bare_env(),
            log=folder / "receiver.log",
            ready_url=f"http://{HOST}:{port}/stats",
            headers={},
        ) as receiver:
            spec = LoadSpec(
                host=HOST,
                port=port,
                path="/ok/1",
                method="POST",
                bodies={"kind": "webhook-event"},
                connections=options.connections,
                duration=options.ceiling_duration,
                warmup=0.5,
            )
            receiver_cpu, loadgen_cpu = cpu_seconds(receiver), children_cpu_seconds()
            measured = load(spec)
            receiver_cpu = cpu_seconds(receiver) - receiver_cpu
            loadgen_cpu = children_cpu_seconds() - loadgen_cpu
            stats = httpx.get(f"http://{HOST}:{port}/stats", timeout=10).json()
    arrivals = stats.get("/ok/1", {}).get("arrivals", 0)
    if arrivals != measured["sent"]:
        raise BenchmarkError(f"receiver ceiling: {measured['sent']:,} POSTs answered, but it counted {arrivals:,}")
    log(
        f"[receiver] {measured['rps']:,.0f} POSTs/s, p50 {measured['p50Ms']:.1f} ms, p99 {measured['p99Ms']:.1f} ms; "
        f"CPU seconds: receiver {receiver_cpu:.1f}, load generator {loadgen_cpu:.1f}"
    )
    return {
        "scenario": "receiver-ceiling",
        "load": measured,
        "postsPerSecond": measured["rps"],
        "cpuSeconds": {"receiver": round(receiver_cpu, 2), "loadGenerator": round(loadgen_cpu, 2)},
    }

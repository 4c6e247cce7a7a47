"""The WhatsApp scenarios of `make bench`: Meta's webhooks in, queued messages out, and the fake's ceiling.

Inbound: a fresh database and organization, connected to the Cloud API with `kaanha connect cloud-api`
against a `kaanha fake-meta` process (stopped again: only its credential check is needed). Then
`kaanha serve` as shipped (its background worker in-process) takes signed Meta webhook POSTs from the
load generator, with 1 or `batch` text messages per POST, for a few seconds or until a number of messages
(so the backlog stays small), and the clock runs on until every message acknowledged is stored as a
message (counted in the database). The intake figures are those of the load window; "processed" runs
from the first POST to the last message stored. A 5xx is counted and the POST sent again, as Meta does.

Outbound: a fresh database and organization connected to a `kaanha fake-meta` process (no 24-hour
window, a throughput it never reaches) whose status webhooks go to `kaanha serve --no-workers`; the
connection sends at 1,000 messages/s. N queued messages to N customers (their window open) are seeded in
bulk with their send jobs, `kaanha worker` processes are started and seen working, then the jobs fall due
together: messages/s runs from then until none is `queued`. Afterwards every message must be `read`,
with its own WhatsApp id, and the fake must have accepted exactly N sends with nothing refused. The fake
posts up to `fake_webhook_batch` statuses a POST (through benchmarks/fake_meta.py when above 1, as the
command has no such option), as Meta batches under load.

The fake's ceiling: the load generator POSTs valid text sends straight at `kaanha fake-meta` (its status
webhooks going to the bare app, which answers 200), with no Kaanha in the way.

CPU seconds of every process are read from /proc around each phase, to show where the time went.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, insert, select, update
from sqlalchemy.engine import make_url

from benchmarks.loadgen import LoadSpec
from benchmarks.processes import (
    HOST,
    BenchmarkError,
    bare_env,
    bare_server,
    check_alive,
    children_cpu_seconds,
    cpu_seconds,
    fake_meta,
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
    workspace,
)
from benchmarks.seed import seed_queued_sends
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.messages.service import SEND_JOB
from kaanha.models import InboundEvent, Job, Message
from kaanha.whatsapp.jobs import INBOUND_EVENT_JOB

WEBHOOK_PATH = "/api/webhooks/whatsapp"
GRAPH_VERSION = "v24.0"
ACCESS_TOKEN = "EAAG-bench-access-token"
APP_SECRET = "bench-app-secret-0123456789"
VERIFY_TOKEN = "bench-verify-token"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
DISPLAY_PHONE_NUMBER = "15550000001"
# Meta: a webhook server should carry 3x outgoing plus 1x incoming traffic, median <= 250 ms, < 1% over 1 s.
WEBHOOK_TRAFFIC_FACTOR = 4
MEDIAN_BOUND_MS = 250.0
OVER_1S_BOUND = 0.01
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class WhatsAppOptions:
    connections: int
    inbound_duration: float
    inbound_warmup: float
    inbound_batches: tuple[int, ...]
    inbound_customers: int
    inbound_max_messages: int
    outbound_messages: int
    outbound_workers: tuple[int, ...]
    fake_throughput: int
    fake_webhook_batch: int
    fake_duration: float
    settle_timeout: float


# --- the database, read directly (a sync engine beside the servers' async ones) ---------------------------


def _sync_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return create_engine(url.set(drivername="sqlite"))
    return create_engine(url.set(drivername="postgresql+psycopg"), pool_size=1)


def _scalar(engine: Engine, query: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def _wait_until(
    engine: Engine, query: Any, target: int, *, what: str, timeout: float, alive: list[tuple[Any, Path, str]]
) -> tuple[float, int]:
    """Poll `query` until it reaches `target`; return the wall time it did and the value.

    Fails when a process in `alive` exits, or when the value has not moved for `timeout` seconds.
    """
    last, moved_at = -1, time.monotonic()
    while True:
        value = _scalar(engine, query)
        if value >= target:
            return time.time(), value
        if value != last:
            last, moved_at = value, time.monotonic()
        elif time.monotonic() - moved_at > timeout:
            raise BenchmarkError(f"{what}: stuck at {value:,} of {target:,} for {timeout:g} s")
        for process, log_file, name in alive:
            check_alive(process, log_file, name)
        time.sleep(POLL_SECONDS)


# --- connecting an organization to the fake ---------------------------------------------------------------


def _fake_command(port: int, callback_url: str, throughput: int, webhook_batch: int) -> list[str]:
    return fake_meta(
        port,
        callback_url=callback_url,
        throughput=throughput,
        webhook_batch=webhook_batch,
        access_token=ACCESS_TOKEN,
        app_secret=APP_SECRET,
        phone_number_id=PHONE_NUMBER_ID,
        waba_id=WABA_ID,
    )


def _fake_running(port: int, callback_url: str, throughput: int, log_file: Path, webhook_batch: int = 1) -> Any:
    return running(
        _fake_command(port, callback_url, throughput, webhook_batch),
        env=bare_env(),
        log=log_file,
        ready_url=f"http://{HOST}:{port}/_fake/stats",
        headers={},
    )


def _organization(env: dict[str, str], name: str) -> str:
    organization = kaanha_json(["orgs", "create", name, "--plan", "pro"], env)
    return str(organization["id"])


def _connect(env: dict[str, str], organization_id: str, messages_per_second: int) -> dict[str, Any]:
    """`kaanha connect cloud-api`: Kaanha checks the number and token with the (fake) Graph API first."""
    return kaanha_json(
        [
            "connect",
            "cloud-api",
            "--org",
            organization_id,
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--waba-id",
            WABA_ID,
            "--access-token",
            ACCESS_TOKEN,
            "--app-secret",
            APP_SECRET,
            "--verify-token",
            VERIFY_TOKEN,
            "--messages-per-second",
            str(messages_per_second),
        ],
        env,
    )


def _verify_url(port: int) -> str:
    """Meta's subscription handshake: answers 200 once the server is up and the org connected."""
    return f"http://{HOST}:{port}{WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"


def _graph_env(env: dict[str, str], fake_port: int) -> dict[str, str]:
    return {**env, "KAANHA_GRAPH_API_URL": f"http://{HOST}:{fake_port}", "KAANHA_GRAPH_API_VERSION": GRAPH_VERSION}


# --- inbound ----------------------------------------------------------------------------------------------


def run_inbound(backend: str, admin_url: str | None, options: WhatsAppOptions) -> list[dict[str, Any]]:
    """One run per batch size; a failed run is a row with its `error` (and no figures), the others go on."""
    results = []
    for batch in options.inbound_batches:
        try:
            results.append(_inbound_run(backend, admin_url, batch, options))
        except BenchmarkError as error:
            log(f"[{backend}] inbound, {batch} messages/POST FAILED: {error}")
            results.append({"backend": backend, "scenario": "inbound", "messagesPerPost": batch, "error": str(error)})
    return results


def _inbound_run(backend: str, admin_url: str | None, batch: int, options: WhatsAppOptions) -> dict[str, Any]:
    label = f"[{backend}] inbound, {batch} message{'s' if batch > 1 else ''}/POST"
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        fake_port = free_port()
        env = _graph_env(kaanha_env(folder / "data", database_url), fake_port)
        organization_id = _organization(env, "Inbound Bench")
        with _fake_running(fake_port, f"http://{HOST}:{free_port()}{WEBHOOK_PATH}", 80, folder / "fake.log"):
            _connect(env, organization_id, 80)
        port = free_port()
        spec = LoadSpec(
            host=HOST,
            port=port,
            path=WEBHOOK_PATH,
            method="POST",
            bodies={
                "kind": "meta-webhook",
                "app_secret": APP_SECRET,
                "phone_number_id": PHONE_NUMBER_ID,
                "waba_id": WABA_ID,
                "display_phone_number": DISPLAY_PHONE_NUMBER,
                "batch": batch,
                "customers_count": options.inbound_customers,
            },
            connections=options.connections,
            duration=options.inbound_duration,
            warmup=options.inbound_warmup,
            retry_errors=True,
            max_requests=-(-options.inbound_max_messages // batch),
        )
        engine = _sync_engine(database_url)
        server_log = folder / "kaanha.log"
        try:
            with running(
                kaanha_server(port, workers=True), env=env, log=server_log, ready_url=_verify_url(port), headers={}
            ) as server:
                server_cpu, loadgen_cpu = cpu_seconds(server), children_cpu_seconds()
                measured = load(spec)
                loadgen_cpu = children_cpu_seconds() - loadgen_cpu
                load_cpu = cpu_seconds(server) - server_cpu
                backlog = measured["sentItems"] - _scalar(engine, _inbound_count(organization_id))
                log(
                    f"{label}: {measured['rps']:,.0f} POSTs/s, {measured['itemsPerSecond']:,.0f} messages/s, "
                    f"p50 {measured['p50Ms']:.1f} ms, {measured['errors']:,} 5xx; "
                    f"{measured['sentItems']:,} acknowledged, {backlog:,} still to store"
                )
                stored_at, stored = _wait_until(
                    engine,
                    _inbound_count(organization_id),
                    measured["sentItems"],
                    what=f"{label}: inbound messages stored",
                    timeout=options.settle_timeout,
                    alive=[(server, server_log, "kaanha serve")],
                )
                server_cpu = cpu_seconds(server) - server_cpu
                events_done_at, _ = _wait_until(
                    engine,
                    select(func.count()).select_from(InboundEvent).where(InboundEvent.processed_at.is_not(None)),
                    measured["sent"],
                    what=f"{label}: webhook events processed",
                    timeout=options.settle_timeout,
                    alive=[(server, server_log, "kaanha serve")],
                )
            _check_inbound(engine, organization_id, measured, stored)
        finally:
            engine.dispose()
    seconds = stored_at - measured["startedAt"]
    processed = measured["sentItems"] / seconds if seconds > 0 else 0.0
    log(
        f"{label}: all {stored:,} stored {seconds:.1f} s after the first POST: {processed:,.0f} messages/s; "
        f"CPU seconds: server {load_cpu:.1f} during the load, {server_cpu:.1f} until stored; "
        f"load generator {loadgen_cpu:.1f}"
    )
    number_mps = measured["itemsPerSecond"] / WEBHOOK_TRAFFIC_FACTOR
    return {
        "backend": backend,
        "scenario": "inbound",
        "messagesPerPost": batch,
        "server": "kaanha serve (in-process worker)",
        "load": measured,
        "postsPerSecond": measured["rps"],
        "messagesPerSecond": measured["itemsPerSecond"],
        "numberMps": number_mps,
        "latencyBoundsHold": (
            measured["p50Ms"] <= MEDIAN_BOUND_MS and measured["over1sShare"] < OVER_1S_BOUND and not measured["errors"]
        ),
        "acknowledgedPosts": measured["sent"],
        "acknowledgedMessages": measured["sentItems"],
        "storedMessages": stored,
        "backlogAtLoadEnd": backlog,
        "processSeconds": seconds,
        "drainSecondsAfterLoad": stored_at - measured["finishedAt"],
        "eventsProcessedSeconds": events_done_at - measured["startedAt"],
        "processedMessagesPerSecond": processed,
        "sustainedNumberMps": min(processed, measured["itemsPerSecond"]) / WEBHOOK_TRAFFIC_FACTOR,
        "cpuSeconds": {
            "serverDuringLoad": round(load_cpu, 2),
            "serverUntilStored": round(server_cpu, 2),
            "loadGenerator": round(loadgen_cpu, 2),
        },
    }


def _inbound_count(organization_id: str) -> Any:
    return (
        select(func.count())
        .select_from(Message)
        .where(Message.organization_id == organization_id, Message.direction == "inbound")
    )


def _check_inbound(engine: Engine, organization_id: str, measured: dict[str, Any], stored: int) -> None:
    """Every acknowledged POST is one stored event, every message in them one stored message; no job failed."""
    events = _scalar(engine, select(func.count()).select_from(InboundEvent))
    failed = _scalar(engine, select(func.count()).select_from(Job).where(Job.status == "failed"))
    distinct = _scalar(
        engine,
        select(func.count(func.distinct(Message.whatsapp_message_id))).where(
            Message.organization_id == organization_id, Message.direction == "inbound"
        ),
    )
    problems = []
    if events != measured["sent"]:
        problems.append(f"{events:,} webhook events stored for {measured['sent']:,} POSTs answered 200")
    if stored != measured["sentItems"] or distinct != stored:
        problems.append(f"{stored:,} messages ({distinct:,} WhatsApp ids) for {measured['sentItems']:,} sent")
    if failed:
        problems.append(f"{failed:,} failed jobs")
    if problems:
        raise BenchmarkError("inbound: " + "; ".join(problems))


# --- outbound ---------------------------------------------------------------------------------------------


def run_outbound(backend: str, admin_url: str | None, options: WhatsAppOptions) -> list[dict[str, Any]]:
    """One run per worker count; a failed run is a row with its `error` (and no figures), the others go on."""
    results = []
    for workers in options.outbound_workers:
        try:
            results.append(_outbound_run(backend, admin_url, workers, options))
        except BenchmarkError as error:
            log(f"[{backend}] outbound, {workers} worker(s) FAILED: {error}")
            results.append(
                {
                    "backend": backend,
                    "scenario": "outbound",
                    "workers": workers,
                    "messages": options.outbound_messages,
                    "error": str(error),
                }
            )
    return results


def _outbound_run(backend: str, admin_url: str | None, workers: int, options: WhatsAppOptions) -> dict[str, Any]:
    count = options.outbound_messages
    label = f"[{backend}] outbound, {workers} worker{'s' if workers > 1 else ''}"
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        fake_port, receiver_port = free_port(), free_port()
        fake_url = f"http://{HOST}:{fake_port}"
        env = _graph_env(kaanha_env(folder / "data", database_url), fake_port)
        organization_id = _organization(env, "Outbound Bench")
        engine = _sync_engine(database_url)
        try:
            callback = f"http://{HOST}:{receiver_port}{WEBHOOK_PATH}"
            with ExitStack() as stack:
                fake_log = folder / "fake.log"
                fake = stack.enter_context(
                    _fake_running(fake_port, callback, options.fake_throughput, fake_log, options.fake_webhook_batch)
                )
                _connect(env, organization_id, 1000)
                receiver_log = folder / "receiver.log"
                receiver = stack.enter_context(
                    running(
                        kaanha_server(receiver_port, workers=False),
                        env=env,
                        log=receiver_log,
                        ready_url=_verify_url(receiver_port),
                        headers={},
                    )
                )
                started_seed = time.perf_counter()
                message_ids = _seed(database_url, organization_id, count)
                log(f"{label}: seeded {count:,} queued messages in {time.perf_counter() - started_seed:.1f} s")
                processes = [(fake, fake_log, "kaanha fake-meta"), (receiver, receiver_log, "the receiver")]
                for index in range(workers):
                    worker_log = folder / f"worker-{index + 1}.log"
                    worker = stack.enter_context(started(kaanha_worker(), env=env, log=worker_log))
                    processes.append((worker, worker_log, f"kaanha worker {index + 1}"))
                _wait_for_workers(engine, organization_id, [process for process, _, _ in processes[2:]], processes)
                due = _release(engine)
                cpu_due = _cpu(processes)
                sent_at, _ = _wait_until(
                    engine,
                    select(func.count()).select_from(Message).where(Message.status != "queued"),
                    count,
                    what=f"{label}: messages out of queued",
                    timeout=options.settle_timeout,
                    alive=processes,
                )
                cpu_sent = _cpu(processes)
                seconds = sent_at - due
                rate = count / seconds if seconds > 0 else 0.0
                log(f"{label}: {count:,} messages left queued in {seconds:.1f} s: {rate:,.0f} messages/s")
                read_at, _ = _wait_until(
                    engine,
                    select(func.count()).select_from(Message).where(Message.status == "read"),
                    count,
                    what=f"{label}: messages read (status webhooks applied)",
                    timeout=options.settle_timeout,
                    alive=processes,
                )
                cpu_read = _cpu(processes)
                log(f"{label}: all read {read_at - due:.1f} s after the jobs fell due")
                sending, statuses = _cpu_delta(cpu_due, cpu_sent), _cpu_delta(cpu_sent, cpu_read)
                log(f"{label}: CPU seconds while sending {_cpu_text(sending)}; then {_cpu_text(statuses)}")
                stats = _fake_stats(fake_url, options.settle_timeout)
            _check_outbound(engine, organization_id, message_ids, stats)
        finally:
            engine.dispose()
    return {
        "backend": backend,
        "scenario": "outbound",
        "workers": workers,
        "messages": count,
        "messagesPerSecondSetting": 1000,
        "fakeWebhookBatch": options.fake_webhook_batch,
        "seconds": seconds,
        "messagesPerSecond": rate,
        "allReadSeconds": read_at - due,
        "statusesPerSecond": 3 * count / (read_at - due),
        "cpuSecondsSending": sending,
        "cpuSecondsAfterSending": statuses,
        "fake": stats,
    }


def _cpu(processes: list[tuple[Any, Path, str]]) -> dict[str, float]:
    return {name: cpu_seconds(process) for process, _, name in processes}


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 2) for name in after}


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name.removeprefix('kaanha ')} {seconds:.1f}" for name, seconds in cpu.items())


def _seed(database_url: str, organization_id: str, count: int) -> list[str]:
    import asyncio

    # Not due for a long while: the workers start idle, and `_release` makes every job due at once.
    later = now() + timedelta(days=365)
    return asyncio.run(seed_queued_sends(database_url, organization_id, count, run_at=later))


def _wait_for_workers(
    engine: Engine,
    organization_id: str,
    workers: list[subprocess.Popen[bytes]],
    processes: list[tuple[Any, Path, str]],
) -> None:
    """Wait until every worker process has claimed a job: a probe that finds nothing to do.

    A probe is a `whatsapp.inbound_event` job naming no event, which its handler finishes at once; the
    worker's id (host:pid:random) stays in `locked_by`. Probes go in one at a time until each pid is seen.
    """
    wanted = {process.pid for process in workers}
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    probe: str | None = None
    while seen != wanted:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"workers {sorted(wanted - seen)} claimed no job within 60 s")
        for process, log_file, name in processes:
            check_alive(process, log_file, name)
        with engine.begin() as connection:
            if probe is not None:
                row = connection.execute(select(Job.status, Job.locked_by).where(Job.id == probe)).one()
                if row.status == "done":
                    # The worker id is host:pid:random; without it, one probe done is all we can tell.
                    owner = str(row.locked_by).rsplit(":", 2)
                    seen |= {int(owner[1])} if len(owner) == 3 and owner[1].isdigit() else wanted
                    probe = None
            if probe is None and seen != wanted:
                probe = new_id("job")
                connection.execute(
                    insert(Job).values(
                        id=probe,
                        kind=INBOUND_EVENT_JOB,
                        organization_id=organization_id,
                        payload={"eventId": "evt_benchmark_probe"},
                        status="pending",
                        run_at=now(),
                        attempts=0,
                        max_attempts=1,
                        created_at=now(),
                    )
                )
        time.sleep(0.05)


def _release(engine: Engine) -> float:
    """Make every send job due a moment from now (past every idle worker's next poll); return that time."""
    lead = 1.5
    due = now() + timedelta(seconds=lead)
    with engine.begin() as connection:
        connection.execute(update(Job).where(Job.kind == SEND_JOB).values(run_at=due))
    return due.timestamp()


def _fake_stats(fake_url: str, timeout: float) -> dict[str, Any]:
    """The fake's counters once it has no webhook left to post."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = httpx.get(f"{fake_url}/_fake/stats", timeout=10).json()
        if stats["pending_webhooks"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(POLL_SECONDS)


def _check_outbound(engine: Engine, organization_id: str, message_ids: list[str], stats: dict[str, Any]) -> None:
    """Each message accepted by the fake exactly once and read; nothing refused, failed or left over.

    The fake answers every accepted send with a new wamid and every message holds the one it was
    answered with: N messages with N distinct wamids and exactly N accepted sends leave no send over.
    """
    count = len(message_ids)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.status, func.count(), func.count(func.distinct(Message.whatsapp_message_id)))
            .where(Message.organization_id == organization_id, Message.direction == "outbound")
            .group_by(Message.status)
        ).all()
        incomplete = connection.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.organization_id == organization_id,
                (Message.sent_at.is_(None)) | (Message.delivered_at.is_(None)) | (Message.read_at.is_(None)),
            )
        )
        failed_jobs = connection.scalar(select(func.count()).select_from(Job).where(Job.status == "failed"))
        open_jobs = connection.scalar(select(func.count()).select_from(Job).where(Job.status != "done"))
    statuses = {status: (total, distinct) for status, total, distinct in rows}
    problems = []
    if statuses != {"read": (count, count)}:
        problems.append(f"messages by status (count, distinct wamids): {statuses}, expected all {count:,} read")
    if incomplete:
        problems.append(f"{incomplete:,} messages lack a sent, delivered or read time")
    if stats["accepted"] != count or stats["sends"] != count or stats["refused"]:
        problems.append(
            f"the fake accepted {stats['accepted']:,} of {stats['sends']:,} sends (refused: {stats['refused']}) "
            f"for {count:,} messages"
        )
    if stats["webhook_failures"] or stats["pending_webhooks"]:
        problems.append(f"webhooks failed {stats['webhook_failures']}, pending {stats['pending_webhooks']}")
    if failed_jobs or open_jobs:
        problems.append(f"{failed_jobs} failed and {open_jobs} unfinished jobs")
    if problems:
        raise BenchmarkError("outbound: " + "; ".join(problems))


# --- the fake alone ---------------------------------------------------------------------------------------


def run_fake_ceiling(options: WhatsAppOptions) -> dict[str, Any]:
    """Valid text sends straight at `kaanha fake-meta`, its status webhooks answered by the bare app."""
    with workspace() as folder:
        sink_port, fake_port = free_port(), free_port()
        callback = f"http://{HOST}:{sink_port}{WEBHOOK_PATH}"
        with (
            running(
                bare_server(sink_port),
                env=bare_env(),
                log=folder / "sink.log",
                ready_url=f"http://{HOST}:{sink_port}/api/whatsapp-api/status",
                headers={},
            ),
            _fake_running(
                fake_port, callback, options.fake_throughput, folder / "fake.log", options.fake_webhook_batch
            ) as fake,
        ):
            spec = LoadSpec(
                host=HOST,
                port=fake_port,
                path=f"/{GRAPH_VERSION}/{PHONE_NUMBER_ID}/messages",
                method="POST",
                bodies={"kind": "graph-send", "access_token": ACCESS_TOKEN},
                connections=options.connections,
                duration=options.fake_duration,
                warmup=1.0,
            )
            fake_cpu = cpu_seconds(fake)
            measured = load(spec)
            fake_cpu = cpu_seconds(fake) - fake_cpu
            stats = httpx.get(f"http://{HOST}:{fake_port}/_fake/stats", timeout=10).json()
    if stats["accepted"] != measured["sent"] or stats["refused"]:
        raise BenchmarkError(f"fake ceiling: {measured['sent']:,} sends answered 200, but the fake says {stats}")
    log(
        f"[fake] {measured['rps']:,.0f} sends/s, p50 {measured['p50Ms']:.1f} ms, p99 {measured['p99Ms']:.1f} ms; "
        f"the fake used {fake_cpu:.1f} CPU seconds in {spec.warmup + spec.duration:g} s"
    )
    return {
        "scenario": "fake-ceiling",
        "load": measured,
        "sendsPerSecond": measured["rps"],
        "fakeCpuSeconds": round(fake_cpu, 2),
        "fake": stats,
    }

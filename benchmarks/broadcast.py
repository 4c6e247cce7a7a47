"""The broadcast scenario of `make bench`: one large broadcast sent through the fake Graph API.

A fresh database (a scratch PostgreSQL database by default) and organization (plan pro, so no
per-broadcast limit), connected with `kaanha connect cloud-api` at `pace` messages/s to a
`kaanha fake-meta` process whose status webhooks go to `kaanha serve --no-workers`. An `order_update`
template with two parameters is created on the fake through its Graph API (approved a second later)
and brought in with POST /templates/sync. `recipients` contacts are seeded in bulk (benchmarks/seed.py)
and all tagged `bench-broadcast`. One `kaanha worker` is started; once it has claimed a job and sat
idle a moment, its VmRSS is the idle figure.

Then: a few POST /broadcasts scheduled a year ahead (each cancelled at once) time the request alone,
beside the real one, which starts at once; every audience is the tag, each parameter a contact field
with a fallback. While it runs, the fake's count of accepted sends and the worker's VmRSS are sampled
every second, with a progress line every few seconds. The dispatch rate is taken over the steady part
(from 10% to 90% of the recipients reached the fake), beside the connection's pace; the total runs from
the POST to GET /broadcasts/{id} saying `completed`. Afterwards the counts must say every recipient was
sent exactly once (the fake accepted exactly `recipients` sends, none refused). Peak memory is the
worker's VmHWM (and the highest VmRSS sampled); its ratio to the idle figure shows whether memory
grows with the audience.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, literal, select, text
from sqlalchemy.engine import make_url

from benchmarks.processes import (
    HOST,
    BenchmarkError,
    check_alive,
    cpu_seconds,
    free_port,
    kaanha_env,
    kaanha_json,
    kaanha_server,
    kaanha_worker,
    log,
    running,
    scratch_database,
    started,
    workspace,
)
from benchmarks.seed import seed_contacts
from benchmarks.whatsapp import (
    ACCESS_TOKEN,
    GRAPH_VERSION,
    WABA_ID,
    _connect,
    _fake_running,
    _graph_env,
    _organization,
    _sync_engine,
    _verify_url,
    _wait_for_workers,
)
from kaanha.kit.clock import now
from kaanha.models import Contact, ContactTag

API = "/api/whatsapp-api"
TAG = "bench-broadcast"
TEMPLATE = "order_update"
COMPONENTS = [
    {
        "type": "body",
        "parameters": [
            {"type": "text", "text": "{{contact.name|there}}"},
            {"type": "text", "text": "{{contact.attributes.city|your city}}"},
        ],
    }
]
SAMPLE_SECONDS = 1.0
PROGRESS_SECONDS = 10.0
# The worker counts as idle after this long with nothing to do (its imports and pools settled).
IDLE_SECONDS = 3.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class BroadcastOptions:
    recipients: int
    pace: int
    accepts: int
    fake_throughput: int
    fake_webhook_batch: int
    settle_timeout: float
    # Measure this many seconds of sending, then cancel the rest (0: until completed).
    window_seconds: float = 0.0


@dataclass
class Sample:
    at: float
    accepted: int
    rss: int


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) of a process in bytes, from /proc/<pid>/status; {} once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def _mib(size: int) -> str:
    return f"{size / MiB:,.0f} MiB"


def run_broadcast(backend: str, admin_url: str | None, options: BroadcastOptions) -> list[dict[str, Any]]:
    """The scenario as one row; a failed run is a row with its `error` (and no figures)."""
    try:
        return [_broadcast_run(backend, admin_url, options)]
    except BenchmarkError as error:
        log(f"[{backend}] broadcast FAILED: {error}")
        return [{"backend": backend, "scenario": "broadcast", "recipients": options.recipients, "error": str(error)}]


def _broadcast_run(backend: str, admin_url: str | None, options: BroadcastOptions) -> dict[str, Any]:
    count = options.recipients
    label = f"[{backend}] broadcast to {count:,}"
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        fake_port, port = free_port(), free_port()
        fake_url = f"http://{HOST}:{fake_port}"
        base = f"http://{HOST}:{port}"
        env = _graph_env(kaanha_env(folder / "data", database_url), fake_port)
        organization_id = _organization(env, "Broadcast Bench")
        with ExitStack() as stack:
            fake_log, server_log, worker_log = folder / "fake.log", folder / "kaanha.log", folder / "worker.log"
            fake = stack.enter_context(
                _fake_running(
                    fake_port,
                    f"{base}/api/webhooks/whatsapp",
                    options.fake_throughput,
                    fake_log,
                    options.fake_webhook_batch,
                )
            )
            connection = _connect(env, organization_id, options.pace)
            pace = int(connection["messagesPerSecond"])
            key = kaanha_json(["keys", "create", "--org", organization_id, "--name", "bench"], env)
            seeding = time.perf_counter()
            asyncio.run(seed_contacts(database_url, organization_id, count))
            _tag_everyone(database_url, organization_id)
            log(f"{label}: seeded {count:,} contacts, all tagged {TAG}, in {time.perf_counter() - seeding:.1f} s")
            server = stack.enter_context(
                running(kaanha_server(port), env=env, log=server_log, ready_url=_verify_url(port), headers={})
            )
            client = stack.enter_context(
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key['key']}"}, timeout=120)
            )
            _approved_template(fake_url, client)
            worker = stack.enter_context(started(kaanha_worker(), env=env, log=worker_log))
            processes = [
                (fake, fake_log, "kaanha fake-meta"),
                (server, server_log, "kaanha serve"),
                (worker, worker_log, "kaanha worker"),
            ]
            idle = _idle_rss(database_url, organization_id, worker, processes)
            log(f"{label}: the worker is idle at {_mib(idle)} (VmRSS)")
            accepts = [_scheduled_accept(client) for _ in range(options.accepts)]
            broadcast, accept = _create(client)
            accepts.append(accept)
            posted = time.time() - accept
            if broadcast["counts"]["total"] != count:
                raise BenchmarkError(f"the broadcast counts {broadcast['counts']['total']:,} recipients, not {count:,}")
            log(
                f"{label}: accepted in {accept * 1000:.0f} ms (median of {len(accepts)}: "
                f"{statistics.median(accepts) * 1000:.0f} ms); pace {pace:,} messages/s"
            )
            cpu_before = cpu_seconds(worker)
            samples, final = _follow(client, fake_url, broadcast["id"], worker, processes, options, label, posted)
            worker_cpu = cpu_seconds(worker) - cpu_before
            peak_hwm = memory(worker.pid).get("VmHWM", 0)
            stats = httpx.get(f"{fake_url}/_fake/stats", timeout=10).json()
    _check(final, stats, count, windowed=bool(options.window_seconds))
    completed = samples[-1].at - posted
    sent_count = int(final["counts"]["sent"])
    rate, steady = _steady_rate(samples, count)
    peak_sampled = max(sample.rss for sample in samples)
    peak = max(peak_hwm, peak_sampled)
    log(
        f"{label}: {sent_count:,} sent, {'cancelled' if options.window_seconds else 'completed'} "
        f"{completed:.1f} s after the POST; {rate:,.0f} messages/s over the steady part "
        f"({steady:.1f} s) against a pace of {pace:,}; worker peak {_mib(peak)} vs {_mib(idle)} idle "
        f"({peak / idle:.2f}x), {worker_cpu:.1f} CPU s"
    )
    return {
        "backend": backend,
        "scenario": "broadcast",
        "recipients": count,
        "acceptSeconds": accepts[-1],
        "acceptSecondsMedian": statistics.median(accepts),
        "acceptSamples": accepts,
        "messagesPerSecondSetting": pace,
        "messagesPerSecond": rate,
        "steadySeconds": steady,
        "firstSendSeconds": _first_send(samples, posted),
        "completedSeconds": completed,
        "overallMessagesPerSecond": sent_count / completed if completed > 0 else 0.0,
        "sent": sent_count,
        "windowSeconds": options.window_seconds,
        "workerIdleRssBytes": idle,
        "workerPeakRssBytes": peak,
        "workerPeakHwmBytes": peak_hwm,
        "workerPeakSampledRssBytes": peak_sampled,
        "peakToIdle": peak / idle if idle else 0.0,
        "workerCpuSeconds": round(worker_cpu, 2),
        "counts": final["counts"],
        "fake": stats,
    }


def _tag_everyone(database_url: str, organization_id: str) -> None:
    """The broadcast's audience: every seeded contact, through one INSERT ... SELECT."""
    engine = _sync_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(ContactTag).from_select(
                    ["organization_id", "contact_id", "tag"],
                    select(Contact.organization_id, Contact.id, literal(TAG)).where(
                        Contact.organization_id == organization_id
                    ),
                )
            )
            if make_url(database_url).get_backend_name() == "postgresql":
                connection.execute(text("ANALYZE contact_tags"))
    finally:
        engine.dispose()


def _approved_template(fake_url: str, client: httpx.Client) -> None:
    """Create the template on the fake (its review approves it after a second), then sync it into Kaanha."""
    graph = f"{fake_url}/{GRAPH_VERSION}/{WABA_ID}/message_templates"
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    created = httpx.post(
        graph,
        headers=headers,
        timeout=10,
        json={
            "name": TEMPLATE,
            "language": "en_US",
            "category": "UTILITY",
            "components": [
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, your order is on its way to {{2}}.",
                    "example": {"body_text": [["Asha", "Pune"]]},
                }
            ],
        },
    )
    if created.status_code != 200:
        raise BenchmarkError(f"the fake refused the template: {created.status_code} {created.text[:300]}")
    deadline = time.monotonic() + 30
    while True:
        found = httpx.get(graph, headers=headers, params={"name": TEMPLATE}, timeout=10).json()["data"]
        if found and found[0]["status"] == "APPROVED":
            break
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the fake did not approve {TEMPLATE} within 30 s: {found}")
        time.sleep(0.2)
    synced = client.post(f"{API}/templates/sync")
    if synced.status_code != 200:
        raise BenchmarkError(f"POST /templates/sync answered {synced.status_code}: {synced.text[:300]}")


def _idle_rss(
    database_url: str, organization_id: str, worker: subprocess.Popen[bytes], processes: list[tuple[Any, Path, str]]
) -> int:
    """The worker's VmRSS once it has claimed a job (so it is up) and then had nothing to do for a moment."""
    engine = _sync_engine(database_url)
    try:
        _wait_for_workers(engine, organization_id, [worker], processes)
    finally:
        engine.dispose()
    time.sleep(IDLE_SECONDS)
    for process, log_file, name in processes:
        check_alive(process, log_file, name)
    return memory(worker.pid)["VmRSS"]


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Benchmark broadcast",
        "templateName": TEMPLATE,
        "language": "en_US",
        "components": COMPONENTS,
        "audience": {"tags": [TAG]},
        **extra,
    }


def _timed_post(client: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started_at = time.perf_counter()
    response = client.post(f"{API}/broadcasts", json=body)
    seconds = time.perf_counter() - started_at
    if response.status_code != 201:
        raise BenchmarkError(f"POST /broadcasts answered {response.status_code}: {response.text[:300]}")
    created: dict[str, Any] = response.json()
    return created, seconds


def _scheduled_accept(client: httpx.Client) -> float:
    """One POST /broadcasts for a year from now (the same checks and writes), cancelled at once."""
    later = (now() + timedelta(days=300)).isoformat().replace("+00:00", "Z")
    created, seconds = _timed_post(client, _body(name="Benchmark (timing only)", scheduledAt=later))
    cancelled = client.post(f"{API}/broadcasts/{created['id']}/cancel")
    if cancelled.status_code != 200:
        raise BenchmarkError(f"cancelling {created['id']} answered {cancelled.status_code}: {cancelled.text[:300]}")
    return seconds


def _create(client: httpx.Client) -> tuple[dict[str, Any], float]:
    return _timed_post(client, _body())


def _follow(
    client: httpx.Client,
    fake_url: str,
    broadcast_id: str,
    worker: subprocess.Popen[bytes],
    processes: list[tuple[Any, Path, str]],
    options: BroadcastOptions,
    label: str,
    posted: float,
) -> tuple[list[Sample], dict[str, Any]]:
    """Sample the fake's accepted sends and the worker's memory until the broadcast is completed."""
    samples: list[Sample] = []
    moved_at, last_progress = time.monotonic(), time.monotonic()
    while True:
        for process, log_file, name in processes:
            check_alive(process, log_file, name)
        accepted = int(httpx.get(f"{fake_url}/_fake/stats", timeout=10).json()["accepted"])
        samples.append(Sample(time.time(), accepted, memory(worker.pid).get("VmRSS", 0)))
        if len(samples) > 1 and accepted != samples[-2].accepted:
            moved_at = time.monotonic()
        if options.window_seconds and samples[-1].at - posted >= options.window_seconds:
            cancelled = client.post(f"{API}/broadcasts/{broadcast_id}/cancel")
            if cancelled.status_code != 200:
                raise BenchmarkError(f"{label}: cancel answered {cancelled.status_code}: {cancelled.text[:300]}")
            log(f"{label}: the {options.window_seconds:g} s window is over; the rest is cancelled")
            return samples, _settled_after_cancel(client, broadcast_id)
        if accepted >= options.recipients or time.monotonic() - last_progress >= PROGRESS_SECONDS:
            broadcast = _get(client, broadcast_id)
            if broadcast["status"] == "completed":
                return samples, broadcast
            if broadcast["status"] != "running":
                raise BenchmarkError(f"{label}: the broadcast is {broadcast['status']}: {broadcast['statusReason']}")
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                log(_progress(label, samples, broadcast, posted))
        if time.monotonic() - moved_at > options.settle_timeout:
            raise BenchmarkError(f"{label}: stuck at {accepted:,} sends for {options.settle_timeout:g} s")
        time.sleep(SAMPLE_SECONDS)


def _settled_after_cancel(client: httpx.Client, broadcast_id: str) -> dict[str, Any]:
    """The broadcast once the sends in flight at the cancel have their answers (nothing left queued)."""
    for _ in range(120):
        broadcast = _get(client, broadcast_id)
        if broadcast["counts"]["queued"] == 0:
            return broadcast
        time.sleep(0.5)
    return broadcast


def _get(client: httpx.Client, broadcast_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/broadcasts/{broadcast_id}")
    if response.status_code != 200:
        raise BenchmarkError(f"GET /broadcasts/{broadcast_id} answered {response.status_code}: {response.text[:300]}")
    broadcast: dict[str, Any] = response.json()
    return broadcast


def _progress(label: str, samples: list[Sample], broadcast: dict[str, Any], posted: float) -> str:
    latest = samples[-1]
    earlier = next((s for s in reversed(samples) if latest.at - s.at >= PROGRESS_SECONDS), samples[0])
    span = latest.at - earlier.at
    recent = (latest.accepted - earlier.accepted) / span if span > 0 else 0.0
    counts = broadcast["counts"]
    return (
        f"{label}: {latest.at - posted:6.0f} s  {latest.accepted:>9,}/{counts['total']:,} at the fake "
        f"({recent:,.0f}/s lately)  queued {counts['queued']:,}  read {counts['read']:,}  "
        f"worker {_mib(latest.rss)}"
    )


def _first_send(samples: list[Sample], posted: float) -> float | None:
    first = next((sample for sample in samples if sample.accepted > 0), None)
    return None if first is None else first.at - posted


def _steady_rate(samples: list[Sample], count: int) -> tuple[float, float]:
    """Sends per second between the samples where 10% and 90% of the sends had reached the fake.

    That leaves out the start (the recipients written, the first batches queued) and the tail. Of a
    measuring window, the sends made in it count (the rest of the audience was cancelled).
    """
    reached = min(count, samples[-1].accepted)
    low = next((sample for sample in samples if sample.accepted >= reached * 0.1), samples[-1])
    high = next((sample for sample in samples if sample.accepted >= reached * 0.9), samples[-1])
    seconds = high.at - low.at
    if seconds <= 0:
        return 0.0, 0.0
    return (high.accepted - low.accepted) / seconds, seconds


def _check(final: dict[str, Any], stats: dict[str, Any], count: int, *, windowed: bool) -> None:
    """Every recipient sent once (or, cancelled after a window, once or not at all): counts and the fake agree."""
    counts = final["counts"]
    problems = []
    sent = stats["accepted"] if windowed else count
    expected = {"total": count, "sent": sent, "queued": 0, "failed": 0, "skipped": 0, "cancelled": count - sent}
    got = {name: counts[name] for name in expected}
    if got != expected:
        problems.append(f"counts {got}, expected {expected}")
    if stats["accepted"] != sent or stats["refused"]:
        problems.append(f"the fake accepted {stats['accepted']:,} sends (refused: {stats['refused']}) for {count:,}")
    if problems:
        raise BenchmarkError("broadcast: " + "; ".join(problems))

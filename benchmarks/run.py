"""`python -m benchmarks` (`make bench`): Kaanha's throughput on this machine, every process on 127.0.0.1.

Scenarios (all by default; `--only api,inbound,outbound` picks some), each on SQLite and, with
`--database-url`, on a scratch PostgreSQL database (broadcast: see below):

- api: in a fresh data dir and database, create an organization and API key with the CLI, insert
  100,000 contacts, start `kaanha serve --no-workers`, load `GET /status` and two
  `GET /contacts?search=` with the load generator (its own process), then do the same against a bare
  Starlette app under the same uvicorn settings.
- inbound: signed Meta webhook POSTs (1 and 50 text messages each) at `kaanha serve` with its
  in-process worker, then the time until every message is stored (benchmarks/whatsapp.py).
- outbound: 20,000 queued messages sent by one and by two `kaanha worker` processes to
  `kaanha fake-meta`, whose status webhooks go to `kaanha serve --no-workers`; and the fake's own
  ceiling, measured alone (benchmarks/whatsapp.py).
- webhooks: 2,000 events owed to one, to ten, and to nine healthy endpoints beside one hanging for 10 s,
  delivered by `kaanha worker` to a receiver on loopback; and the receiver's own ceiling
  (benchmarks/webhooks.py).
- broadcast: one POST /broadcasts to 100,000 contacts (--broadcast-recipients), measured for 180 s and
  then cancelled (--broadcast-seconds; 0 sends to everyone, which takes tens of minutes), through
  `kaanha fake-meta`, one
  `kaanha worker`, `kaanha serve --no-workers` for the API and the status webhooks, on a scratch
  PostgreSQL database (--database-url, else postgresql+asyncpg://postgres@127.0.0.1:5432/test;
  --broadcast-database sqlite for SQLite): seconds to accept the request, messages/s reaching the fake
  beside the connection's pace, the total time, and the worker's peak memory beside its memory when
  idle (benchmarks/broadcast.py).
- ai_agents: the builtin AI agent on a labelled set (benchmarks/ai_agents_data.json): shares of right
  answers, wrong answers and correct handoffs with lexical ranking alone and with the semantic extra,
  and its reply time (benchmarks/ai_agents.py; in-process, no database).
- analytics: GET /analytics for 90 days over 1,000,000 messages in one organization beside 1,000,000 in
  four others (--analytics-messages), 25 requests (--analytics-requests) to `kaanha serve --no-workers`:
  median and p95, on SQLite (unless --no-sqlite) and on a scratch PostgreSQL database (--database-url,
  else the default server) (benchmarks/analytics.py).

Prints a table per scenario and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from benchmarks import processes
from benchmarks.ai_agents import format_ai_agents, run_ai_agents
from benchmarks.analytics import add_analytics_arguments, analytics_options, format_analytics, run_analytics
from benchmarks.broadcast import BroadcastOptions, run_broadcast
from benchmarks.loadgen import LoadSpec
from benchmarks.processes import (
    HOST,
    BenchmarkError,
    bare_env,
    bare_server,
    free_port,
    kaanha_env,
    kaanha_json,
    kaanha_server,
    load,
    log,
    running,
    scratch_database,
    workspace,
)
from benchmarks.seed import seed_contacts
from benchmarks.webhooks import WebhookOptions, run_receiver_ceiling, run_webhooks
from benchmarks.whatsapp import (
    MEDIAN_BOUND_MS,
    OVER_1S_BOUND,
    WhatsAppOptions,
    run_fake_ceiling,
    run_inbound,
    run_outbound,
)
from kaanha.kit.clock import now as clock_now

API = "/api/whatsapp-api"
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    term: str | None = None


def _check(url: str, headers: dict[str, str], expected_total: int | None) -> int | None:
    """One request before the load: it must answer 200, and a search must find what was seeded."""
    response = httpx.get(url, headers=headers, timeout=30)
    if response.status_code != 200:
        raise BenchmarkError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    if expected_total is None:
        return None
    total = int(response.json()["pagination"]["total"])
    if total != expected_total:
        raise BenchmarkError(f"GET {url} found {total} contacts, but {expected_total} match what was seeded")
    return total


def run_backend(backend: str, admin_url: str | None, options: argparse.Namespace) -> list[dict[str, Any]]:
    endpoints = [
        Endpoint("status", f"{API}/status"),
        Endpoint("contacts search (name)", f"{API}/contacts?search={quote(options.name_term)}", options.name_term),
        Endpoint("contacts search (phone)", f"{API}/contacts?search={quote(options.phone_term)}", options.phone_term),
    ]
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        env = kaanha_env(folder / "data", database_url)
        started = time.perf_counter()
        organization = kaanha_json(["orgs", "create", "Bench Company", "--plan", "pro"], env)
        key = kaanha_json(["keys", "create", "--org", organization["id"], "--name", "bench"], env)
        headers = {"Authorization": f"Bearer {key['key']}"}
        log(f"[{backend}] organization {organization['id']}; seeding {options.contacts:,} contacts")
        seeded = asyncio.run(seed_contacts(database_url, organization["id"], options.contacts))
        elapsed = time.perf_counter() - started
        log(f"[{backend}] seeded {seeded.count:,} contacts and {seeded.tags:,} tags in {elapsed:.1f} s")
        expected = {endpoint.label: seeded.matches(endpoint.term) if endpoint.term else None for endpoint in endpoints}

        def spec(port: int, endpoint: Endpoint) -> LoadSpec:
            return LoadSpec(
                host=HOST,
                port=port,
                path=endpoint.path,
                headers=headers,
                connections=options.connections,
                duration=options.duration,
                warmup=options.warmup,
            )

        kaanha: dict[str, dict[str, Any]] = {}
        port = free_port()
        ready = f"http://{HOST}:{port}{API}/status"
        with running(kaanha_server(port), env=env, log=folder / "kaanha.log", ready_url=ready, headers=headers):
            for endpoint in endpoints:
                _check(f"http://{HOST}:{port}{endpoint.path}", headers, expected[endpoint.label])
                kaanha[endpoint.label] = load(spec(port, endpoint))
                log(f"[{backend}] kaanha {endpoint.label}: {kaanha[endpoint.label]['rps']:,.0f} rps")
        bare: dict[str, dict[str, Any]] = {}
        port = free_port()
        ready = f"http://{HOST}:{port}{API}/status"
        with running(bare_server(port), env=bare_env(), log=folder / "bare.log", ready_url=ready, headers={}):
            for endpoint in endpoints:
                bare[endpoint.label] = load(spec(port, endpoint))
                log(f"[{backend}] bare   {endpoint.label}: {bare[endpoint.label]['rps']:,.0f} rps")
    return [_result(backend, endpoint, expected[endpoint.label], kaanha, bare) for endpoint in endpoints]


def _result(
    backend: str,
    endpoint: Endpoint,
    matches: int | None,
    kaanha: dict[str, dict[str, Any]],
    bare: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    ours, theirs = kaanha[endpoint.label], bare[endpoint.label]
    return {
        "backend": backend,
        "endpoint": endpoint.label,
        "request": f"GET {endpoint.path}",
        "matches": matches,
        "kaanha": ours,
        "bare": theirs,
        "ratio": ours["rps"] / theirs["rps"] if theirs["rps"] else 0.0,
    }


def _table(
    title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: set[int], notes: Sequence[str] = ()
) -> str:
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if index in left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(row) for row in rows), rule, *notes])


def format_table(results: list[dict[str, Any]], options: argparse.Namespace) -> str:
    header = ("backend", "request", "matches", "rps", "p50 ms", "p99 ms", "bare rps", "bare p50", "ratio")
    rows = [
        (
            result["backend"],
            result["request"].removeprefix(f"GET {API}"),
            "-" if result["matches"] is None else f"{result['matches']:,}",
            f"{result['kaanha']['rps']:,.0f}",
            f"{result['kaanha']['p50Ms']:.1f}",
            f"{result['kaanha']['p99Ms']:.1f}",
            f"{result['bare']['rps']:,.0f}",
            f"{result['bare']['p50Ms']:.1f}",
            f"{result['ratio']:.3f}",
        )
        for result in results
    ]
    title = (
        f"Kaanha vs a bare Starlette app: GET {API}/..., {options.connections} keep-alive connections, "
        f"{options.duration:g} s after {options.warmup:g} s warm-up, {options.contacts:,} contacts, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return _table(title, header, rows, {0, 1})


def _failures(results: list[dict[str, Any]], what: str) -> list[str]:
    """Lines for failed runs, under the table: no figures, the start of the reason (all of it is in the JSON)."""
    lines = []
    for result in results:
        if "error" in result:
            reason = result["error"].splitlines()[0]
            reason = reason if len(reason) <= 150 else reason[:147] + "..."
            lines.append(f"{result['backend']}, {what.format(**result)}: FAILED: {reason}")
    return lines


def format_inbound(results: list[dict[str, Any]], options: argparse.Namespace) -> str:
    header = (
        "backend",
        "msgs/POST",
        "POSTs/s",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        ">1 s",
        "5xx",
        "number mps",
        "bounds",
        "stored",
        "processed msgs/s",
        "stored after",
        "sustained mps",
    )
    rows = [
        (
            result["backend"],
            str(result["messagesPerPost"]),
            f"{result['postsPerSecond']:,.0f}",
            f"{result['messagesPerSecond']:,.0f}",
            f"{result['load']['p50Ms']:.1f}",
            f"{result['load']['p99Ms']:.1f}",
            f"{result['load']['over1sShare']:.1%}",
            f"{result['load']['errors']:,}",
            f"{result['numberMps']:,.0f}",
            "hold" if result["latencyBoundsHold"] else "BROKEN",
            f"{result['storedMessages']:,}",
            f"{result['processedMessagesPerSecond']:,.0f}",
            f"{result['processSeconds']:.1f} s",
            f"{result['sustainedNumberMps']:,.0f}",
        )
        for result in results
        if "error" not in result
    ]
    title = (
        f"Meta webhooks in: signed POST /api/webhooks/whatsapp at `kaanha serve` (with its in-process worker), "
        f"{options.connections} connections, {options.inbound_duration:g} s (or up to "
        f"{options.inbound_max_messages:,} messages) after {options.inbound_warmup:g} s warm-up\n"
        f"  number mps = msgs/s / 4 (Meta: 3x outgoing + 1x incoming); bounds: p50 <= "
        f"{MEDIAN_BOUND_MS:g} ms, < {OVER_1S_BOUND:.0%} over 1 s and no 5xx (retried as Meta would);\n"
        f"  processed = every message stored, counted from the first POST; sustained mps = the lower of msgs/s "
        f"and processed msgs/s, / 4"
    )
    return _table(title, header, rows, {0}, _failures(results, "{messagesPerPost} messages/POST"))


def format_outbound(results: list[dict[str, Any]], ceiling: dict[str, Any] | None, options: argparse.Namespace) -> str:
    header = ("backend", "workers", "messages", "msgs/s", "left queued in", "all read in", "statuses/s")
    rows = [
        (
            result["backend"],
            str(result["workers"]),
            f"{result['messages']:,}",
            f"{result['messagesPerSecond']:,.0f}",
            f"{result['seconds']:.1f} s",
            f"{result['allReadSeconds']:.1f} s",
            f"{result['statusesPerSecond']:,.0f}",
        )
        for result in results
        if "error" not in result
    ]
    if ceiling is not None:
        load = ceiling["load"]
        rows.append(
            (
                "fake alone",
                "-",
                f"{load['sent']:,}",
                f"{ceiling['sendsPerSecond']:,.0f}",
                f"p50 {load['p50Ms']:.1f} ms",
                f"p99 {load['p99Ms']:.1f} ms",
                "-",
            )
        )
    title = (
        f"Queued messages out: `kaanha worker` processes -> `kaanha fake-meta` (--no-window, --throughput "
        f"{options.fake_throughput:,}), its status webhooks (up to {options.fake_webhook_batch} a POST) -> "
        f"`kaanha serve --no-workers`; the number at 1,000 messages/s\n"
        f"  msgs/s = messages / time from the jobs falling due to none queued; all read = every status webhook "
        f"applied; fake alone: {options.connections} connections POSTing text sends straight at the fake"
    )
    return _table(title, header, rows, {0}, _failures(results, "{workers} worker(s), {messages} messages"))


def format_webhooks(results: list[dict[str, Any]], ceiling: dict[str, Any] | None, options: argparse.Namespace) -> str:
    header = (
        "backend",
        "endpoints",
        "deliveries",
        "deliveries/s",
        "per worker CPU s",
        "done in",
        "first after",
        "longest pause",
        "failed attempts",
        "/hang requests",
        "vs all healthy",
        "load",
    )
    rows = [
        (
            result["backend"],
            result["endpoints"],
            f"{result['deliveries']:,}",
            f"{result['deliveriesPerSecond']:,.0f}",
            f"{result['deliveriesPerWorkerCpuSecond']:,.0f}",
            f"{result['seconds']:.1f} s",
            f"{result['firstArrivalSeconds']:.2f} s",
            f"{result['longestPauseSeconds']:.2f} s",
            f"{sum(result['failedAttempts'].values()):,}",
            f"{result['hangRequests']:,}" if result["hangingEndpoints"] else "-",
            f"{result['healthyRatio']:.2f}" if "healthyRatio" in result else "-",
            f"{result['loadAverage']:.2f}",
        )
        for result in results
        if "error" not in result
    ]
    if ceiling is not None:
        load = ceiling["load"]
        rows.append(
            (
                "receiver alone",
                "/ok/1",
                f"{load['sent']:,}",
                f"{ceiling['postsPerSecond']:,.0f}",
                "-",
                f"p50 {load['p50Ms']:.1f} ms",
                f"p99 {load['p99Ms']:.1f} ms",
                "-",
                "-",
                "-",
                "-",
                "-",
            )
        )
    title = (
        f"Outgoing webhooks: {options.webhook_events:,} message.received events, one delivery per endpoint, "
        f"falling due together; one `kaanha worker` (default webhook settings) -> benchmarks/receiver.py, "
        f"/ok answering 200 at once, /hang after {options.webhook_hang_seconds:g} s\n"
        f"  deliveries/s = the healthy endpoints' deliveries / time from falling due to the last success; "
        f"vs all healthy = that rate beside one /hang over the rate of {options.webhook_endpoints} /ok;\n"
        f"  per worker CPU s = those deliveries / the CPU seconds `kaanha worker` used meanwhile (steadier than the "
        f"rate when other work shares the machine);\n"
        f"  longest pause = between two successive healthy successes; failed attempts (all endpoints) "
        f"and /hang requests until the healthy ones were done; receiver alone: {options.connections} "
        f"connections POSTing signed events straight at it; load = the 1-minute load average as the run ended "
        f"({os.cpu_count()} CPUs)"
    )
    return _table(title, header, rows, {0, 1}, _failures(results, "{endpoints}"))


def format_broadcast(results: list[dict[str, Any]]) -> str:
    header = (
        "backend",
        "recipients",
        "accept ms",
        "pace",
        "msgs/s",
        "of pace",
        "first send",
        "sent",
        "in",
        "idle RSS",
        "peak RSS",
        "peak/idle",
    )
    rows = [
        (
            result["backend"],
            f"{result['recipients']:,}",
            f"{result['acceptSeconds'] * 1000:,.0f} (median {result['acceptSecondsMedian'] * 1000:,.0f})",
            f"{result['messagesPerSecondSetting']:,}",
            f"{result['messagesPerSecond']:,.0f}",
            f"{result['messagesPerSecond'] / result['messagesPerSecondSetting']:.0%}",
            "-" if result["firstSendSeconds"] is None else f"{result['firstSendSeconds']:.1f} s",
            f"{result.get('sent', result['recipients']):,}",
            f"{result['completedSeconds']:,.1f} s",
            f"{result['workerIdleRssBytes'] / 2**20:,.0f} MiB",
            f"{result['workerPeakRssBytes'] / 2**20:,.0f} MiB",
            f"{result['peakToIdle']:.2f}",
        )
        for result in results
        if "error" not in result
    ]
    title = (
        "One broadcast: POST /broadcasts to every seeded contact (a tag) -> one `kaanha worker` -> "
        "`kaanha fake-meta`, its status webhooks -> `kaanha serve --no-workers`\n"
        "  accept = the POST that starts it (median: with those scheduled a year ahead, cancelled at once); "
        "msgs/s = sends reaching the fake from 10% to 90% of the audience, beside the connection's pace;\n"
        "  sent in = from the POST to `completed` (or to the cancel ending the measuring window);\n"
        "  RSS = the worker's VmRSS idle before the POST, and its "
        "VmHWM (or highest VmRSS sampled) by the end"
    )
    return _table(title, header, rows, {0}, _failures(results, "{recipients} recipients"))


SCENARIOS = ("api", "inbound", "outbound", "webhooks", "broadcast", "ai_agents", "analytics")
DEFAULT_SCENARIOS = SCENARIOS
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _scenarios(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = set(chosen) - set(SCENARIOS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(SCENARIOS)} (got {text!r})")
    return chosen


def _numbers(text: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, not {text!r}")
    return numbers


def _endpoints(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 2 <= number <= 19:
        raise argparse.ArgumentTypeError(f"expected 2 to 19 endpoints, not {number}")
    return number


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only",
        type=_scenarios,
        default=DEFAULT_SCENARIOS,
        help=f"Scenarios to run, separated by commas: {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KAANHA_BENCH_DATABASE_URL"),
        help="Also run on PostgreSQL: a URL such as postgresql+asyncpg://postgres@127.0.0.1:5432/test whose "
        "server gets a fresh database for the run, dropped afterwards (default $KAANHA_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Skip SQLite (with --database-url)")
    parser.add_argument("--connections", type=int, default=16, help="Concurrent keep-alive connections (16)")
    api = parser.add_argument_group("api")
    api.add_argument("--contacts", type=int, default=100_000, help="Contacts in the organization (100000)")
    api.add_argument("--duration", type=float, default=5.0, help="Measured seconds per run (5)")
    api.add_argument("--warmup", type=float, default=1.0, help="Unmeasured seconds before each run (1)")
    api.add_argument("--name-term", default="kumar", help="Name fragment to search for (kumar)")
    api.add_argument("--phone-term", default="4321", help="Phone digits to search for (4321)")
    inbound = parser.add_argument_group("inbound")
    inbound.add_argument("--inbound-duration", type=float, default=3.0, help="Measured seconds per run, at most (3)")
    inbound.add_argument("--inbound-warmup", type=float, default=0.3, help="Unmeasured seconds first (0.3)")
    inbound.add_argument(
        "--inbound-batches", type=_numbers, default=(1, 50), help="Messages per POST, one run each (1,50)"
    )
    inbound.add_argument("--inbound-customers", type=int, default=5000, help="Customers who write (5000)")
    inbound.add_argument(
        "--inbound-max-messages",
        type=int,
        default=10_000,
        help="Stop POSTing after this many messages, so the backlog the worker then works off stays small (10000)",
    )
    outbound = parser.add_argument_group("outbound")
    outbound.add_argument("--outbound-messages", type=int, default=20_000, help="Queued messages (20000)")
    outbound.add_argument(
        "--outbound-workers", type=_numbers, default=(1, 2), help="Worker processes, one run each (1,2)"
    )
    outbound.add_argument(
        "--fake-throughput", type=int, default=100_000, help="The fake's messages/s before 130429 (100000)"
    )
    outbound.add_argument(
        "--fake-webhook-batch",
        type=int,
        default=50,
        help="Statuses per webhook POST from the fake, at most (50; 1 runs `kaanha fake-meta` as it is)",
    )
    outbound.add_argument("--fake-duration", type=float, default=4.0, help="Measured seconds, fake alone (4)")
    webhooks = parser.add_argument_group("webhooks")
    webhooks.add_argument(
        "--webhook-events", type=int, default=2000, help="Events seeded per run, each owed to every endpoint (2000)"
    )
    webhooks.add_argument(
        "--webhook-endpoints",
        type=_endpoints,
        default=10,
        help="Endpoints in the all-healthy run, 2 to 19 (an organization has at most 20, one is the probe); "
        "the hanging run has one fewer healthy beside /hang (10)",
    )
    webhooks.add_argument(
        "--webhook-hang-seconds", type=float, default=10.0, help="How long /hang waits before answering (10)"
    )
    webhooks.add_argument("--receiver-duration", type=float, default=3.0, help="Measured seconds, receiver alone (3)")
    broadcast = parser.add_argument_group(
        "broadcast",
        "One broadcast through `kaanha fake-meta` (its --fake-throughput and --fake-webhook-batch apply)",
    )
    broadcast.add_argument(
        "--broadcast-recipients", type=int, default=100_000, help="Contacts seeded, all in the audience (100000)"
    )
    broadcast.add_argument(
        "--broadcast-seconds",
        type=float,
        default=180.0,
        help="Seconds of sending measured, then the rest is cancelled (180; 0: until every recipient is sent)",
    )
    broadcast.add_argument(
        "--broadcast-pace",
        type=int,
        default=80,
        help="The connection's messages_per_second, 1-1000 (80, Meta's default; upgraded numbers reach 1000)",
    )
    broadcast.add_argument(
        "--broadcast-accepts",
        type=int,
        default=3,
        help="POST /broadcasts scheduled a year ahead (and cancelled) before the real one, for a median (3)",
    )
    broadcast.add_argument(
        "--broadcast-database",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help=f"PostgreSQL: a scratch database on the server of --database-url, else {DEFAULT_POSTGRES} "
        "(default postgresql)",
    )
    add_analytics_arguments(parser)
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=120.0,
        help="Give up when stored/sent counts stop moving for this many seconds (120)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    parser.add_argument(
        "--keep", type=Path, help="Keep each run's data dir and process logs in a folder of this directory"
    )
    return parser.parse_args(argv)


def _whatsapp_options(options: argparse.Namespace) -> WhatsAppOptions:
    return WhatsAppOptions(
        connections=options.connections,
        inbound_duration=options.inbound_duration,
        inbound_warmup=options.inbound_warmup,
        inbound_batches=options.inbound_batches,
        inbound_customers=options.inbound_customers,
        inbound_max_messages=options.inbound_max_messages,
        outbound_messages=options.outbound_messages,
        outbound_workers=options.outbound_workers,
        fake_throughput=options.fake_throughput,
        fake_webhook_batch=options.fake_webhook_batch,
        fake_duration=options.fake_duration,
        settle_timeout=options.settle_timeout,
    )


def _webhook_options(options: argparse.Namespace) -> WebhookOptions:
    return WebhookOptions(
        events=options.webhook_events,
        endpoints=options.webhook_endpoints,
        hang_seconds=options.webhook_hang_seconds,
        connections=options.connections,
        ceiling_duration=options.receiver_duration,
        settle_timeout=options.settle_timeout,
    )


def _broadcast_options(options: argparse.Namespace) -> BroadcastOptions:
    return BroadcastOptions(
        recipients=options.broadcast_recipients,
        pace=options.broadcast_pace,
        accepts=options.broadcast_accepts,
        fake_throughput=options.fake_throughput,
        fake_webhook_batch=options.fake_webhook_batch,
        settle_timeout=options.settle_timeout,
        window_seconds=options.broadcast_seconds,
    )


def _webhook_settings() -> dict[str, Any] | None:
    """The delivery engine's defaults (kaanha.config.WebhookSettings), as the benchmark runs them."""
    from kaanha import config

    settings = getattr(config, "WebhookSettings", None)
    return None if settings is None else dict(settings().model_dump(mode="json"))


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    backends: list[tuple[str, str | None]] = []
    if not options.no_sqlite:
        backends.append(("sqlite", None))
    if options.database_url:
        backends.append(("postgresql", options.database_url))
    if not backends and not set(options.only) <= {"broadcast", "ai_agents", "analytics"}:
        log("nothing to run: --no-sqlite needs --database-url")
        return 2
    processes.KEEP = options.keep
    whatsapp = _whatsapp_options(options)
    webhook = _webhook_options(options)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"note: the load average is {load_before[0]:.2f} before starting; other work will skew the figures")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    inbound: list[dict[str, Any]] = []
    outbound: list[dict[str, Any]] = []
    webhooks: list[dict[str, Any]] = []
    broadcasts: list[dict[str, Any]] = []
    ceiling: dict[str, Any] | None = None
    receiver_ceiling: dict[str, Any] | None = None
    failures: list[str] = []
    if "outbound" in options.only:
        try:
            ceiling = run_fake_ceiling(whatsapp)
        except BenchmarkError as error:
            failures.append(f"fake ceiling: {error}")
    if "webhooks" in options.only:
        try:
            receiver_ceiling = run_receiver_ceiling(webhook)
        except BenchmarkError as error:
            failures.append(f"receiver ceiling: {error}")
    for backend, admin_url in backends:
        if "api" in options.only:
            try:
                results += run_backend(backend, admin_url, options)
            except BenchmarkError as error:
                failures.append(f"[{backend}] api: {error}")
        if "inbound" in options.only:
            inbound += run_inbound(backend, admin_url, whatsapp)
        if "outbound" in options.only:
            outbound += run_outbound(backend, admin_url, whatsapp)
        if "webhooks" in options.only:
            webhooks += run_webhooks(backend, admin_url, webhook)
    if "broadcast" in options.only:
        # Its own database choice: the issue asks for PostgreSQL, whatever --no-sqlite says.
        if options.broadcast_database == "sqlite":
            broadcasts += run_broadcast("sqlite", None, _broadcast_options(options))
        else:
            broadcasts += run_broadcast(
                "postgresql", options.database_url or DEFAULT_POSTGRES, _broadcast_options(options)
            )
    ai_agents: list[dict[str, Any]] = run_ai_agents() if "ai_agents" in options.only else []
    analytics: list[dict[str, Any]] = []
    if "analytics" in options.only:
        # SQLite and PostgreSQL both, as the issue asks: PostgreSQL on the default server without --database-url.
        if not options.no_sqlite:
            analytics += run_analytics("sqlite", None, analytics_options(options))
        analytics += run_analytics("postgresql", options.database_url or DEFAULT_POSTGRES, analytics_options(options))
    failures += [f"ai_agents {row['mode']}: {row['error']}" for row in ai_agents if "error" in row]
    failures += [
        f"[{row['backend']}] {row['scenario']}: {row['error']}"
        for row in inbound + outbound + webhooks + broadcasts + analytics
        if "error" in row
    ]
    tables = []
    if results:
        tables.append(format_table(results, options))
    if inbound:
        tables.append(format_inbound(inbound, options))
    if outbound or ceiling:
        tables.append(format_outbound(outbound, ceiling, options))
    if webhooks or receiver_ceiling:
        tables.append(format_webhooks(webhooks, receiver_ceiling, options))
    if broadcasts:
        tables.append(format_broadcast(broadcasts))
    if ai_agents:
        tables.append(format_ai_agents(ai_agents))
    if analytics:
        tables.append(format_analytics(analytics))
    print("\n\n".join(tables))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "generatedAt": clock_now().isoformat().replace("+00:00", "Z"),
        "machine": {
            "cpus": os.cpu_count(),
            # Anything else running skews the figures: the load average before and after says if it did.
            "loadAverageBefore": load_before,
            "loadAverageAfter": os.getloadavg(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {
            "scenarios": list(options.only),
            "contacts": options.contacts,
            "connections": options.connections,
            "durationSeconds": options.duration,
            "warmupSeconds": options.warmup,
            "nameTerm": options.name_term,
            "phoneTerm": options.phone_term,
            "inboundDurationSeconds": options.inbound_duration,
            "inboundWarmupSeconds": options.inbound_warmup,
            "inboundMessagesPerPost": list(options.inbound_batches),
            "inboundCustomers": options.inbound_customers,
            "inboundMaxMessages": options.inbound_max_messages,
            "outboundMessages": options.outbound_messages,
            "outboundWorkers": list(options.outbound_workers),
            "fakeThroughput": options.fake_throughput,
            "fakeWebhookBatch": options.fake_webhook_batch,
            "webhookEvents": options.webhook_events,
            "webhookEndpoints": options.webhook_endpoints,
            "webhookHangSeconds": options.webhook_hang_seconds,
            "webhookSettings": _webhook_settings(),
            "broadcastRecipients": options.broadcast_recipients,
            "broadcastPace": options.broadcast_pace,
            "broadcastDatabase": options.broadcast_database,
            "analyticsMessages": options.analytics_messages,
            "server": "uvicorn, loop=uvloop, http=httptools, 1 process; kaanha serve --no-workers (api), "
            "kaanha serve with its worker (inbound)",
        },
        "results": results,
        "inbound": inbound,
        "outbound": outbound,
        "fakeCeiling": ceiling,
        "webhooks": webhooks,
        "receiverCeiling": receiver_ceiling,
        "broadcast": broadcasts,
        "aiAgents": ai_agents,
        "analytics": analytics,
        "failures": failures,
        "elapsedSeconds": round(time.perf_counter() - started, 1),
    }
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    log(f"results written to {options.output} ({report['elapsedSeconds']} s)")
    for failure in failures:
        log(f"benchmark failed: {failure}")
    return 1 if failures else 0

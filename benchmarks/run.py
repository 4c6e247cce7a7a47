"""`python -m benchmarks` (`make bench`): Kaanha's requests/s beside a bare Starlette app, on this machine.

For each database (SQLite always; PostgreSQL too with `--database-url`), in a fresh data dir and
database: create an organization and API key with the CLI, insert 100,000 contacts, start
`kaanha serve --no-workers`, load `GET /status` and two `GET /contacts?search=` with the load
generator (its own process), then do the same against a bare Starlette app under the same uvicorn
settings. Prints a table and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.engine import make_url

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
    running,
)
from benchmarks.seed import seed_contacts
from kaanha.kit.clock import now as clock_now
from kaanha.testing.databases import scratch_postgres_database

API = "/api/whatsapp-api"
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    term: str | None = None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _database(backend: str, folder: Path, admin_url: str | None) -> Iterator[str]:
    """The database URL for one backend run: a SQLite file in `folder`, or a fresh PostgreSQL database."""
    if admin_url is None:
        yield f"sqlite+aiosqlite:///{folder / 'kaanha.db'}"
        return
    with scratch_postgres_database(admin_url, prefix="kaanha_bench") as url:
        _log(f"[{backend}] created database {make_url(url).database}")
        yield url
    _log(f"[{backend}] dropped it")


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
    with tempfile.TemporaryDirectory(prefix="kaanha-bench-") as temporary:
        folder = Path(temporary)
        with _database(backend, folder, admin_url) as database_url:
            env = kaanha_env(folder / "data", database_url)
            started = time.perf_counter()
            organization = kaanha_json(["orgs", "create", "Bench Company", "--plan", "pro"], env)
            key = kaanha_json(["keys", "create", "--org", organization["id"], "--name", "bench"], env)
            headers = {"Authorization": f"Bearer {key['key']}"}
            _log(f"[{backend}] organization {organization['id']}; seeding {options.contacts:,} contacts")
            seeded = asyncio.run(seed_contacts(database_url, organization["id"], options.contacts))
            elapsed = time.perf_counter() - started
            _log(f"[{backend}] seeded {seeded.count:,} contacts and {seeded.tags:,} tags in {elapsed:.1f} s")
            expected = {
                endpoint.label: seeded.matches(endpoint.term) if endpoint.term else None for endpoint in endpoints
            }

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
                    _log(f"[{backend}] kaanha {endpoint.label}: {kaanha[endpoint.label]['rps']:,.0f} rps")
            bare: dict[str, dict[str, Any]] = {}
            port = free_port()
            ready = f"http://{HOST}:{port}{API}/status"
            with running(bare_server(port), env=bare_env(), log=folder / "bare.log", ready_url=ready, headers={}):
                for endpoint in endpoints:
                    bare[endpoint.label] = load(spec(port, endpoint))
                    _log(f"[{backend}] bare   {endpoint.label}: {bare[endpoint.label]['rps']:,.0f} rps")
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
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]
    left = {0, 1}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if index in left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    title = (
        f"Kaanha vs a bare Starlette app: GET {API}/..., {options.connections} keep-alive connections, "
        f"{options.duration:g} s after {options.warmup:g} s warm-up, {options.contacts:,} contacts, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(row) for row in rows), rule])


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KAANHA_BENCH_DATABASE_URL"),
        help="Also run on PostgreSQL: a URL such as postgresql+asyncpg://postgres@127.0.0.1:5432/test whose "
        "server gets a fresh database for the run, dropped afterwards (default $KAANHA_BENCH_DATABASE_URL)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Skip SQLite (with --database-url)")
    parser.add_argument("--contacts", type=int, default=100_000, help="Contacts in the organization (100000)")
    parser.add_argument("--connections", type=int, default=16, help="Concurrent keep-alive connections (16)")
    parser.add_argument("--duration", type=float, default=5.0, help="Measured seconds per run (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="Unmeasured seconds before each run (1)")
    parser.add_argument("--name-term", default="kumar", help="Name fragment to search for (kumar)")
    parser.add_argument("--phone-term", default="4321", help="Phone digits to search for (4321)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    backends: list[tuple[str, str | None]] = []
    if not options.no_sqlite:
        backends.append(("sqlite", None))
    if options.database_url:
        backends.append(("postgresql", options.database_url))
    if not backends:
        _log("nothing to run: --no-sqlite needs --database-url")
        return 2
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    try:
        for backend, admin_url in backends:
            results += run_backend(backend, admin_url, options)
    except BenchmarkError as error:
        _log(f"benchmark failed: {error}")
        return 1
    print(format_table(results, options))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "generatedAt": clock_now().isoformat().replace("+00:00", "Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {
            "contacts": options.contacts,
            "connections": options.connections,
            "durationSeconds": options.duration,
            "warmupSeconds": options.warmup,
            "nameTerm": options.name_term,
            "phoneTerm": options.phone_term,
            "server": "uvicorn, loop=uvloop, http=httptools, 1 process; kaanha serve --no-workers",
        },
        "results": results,
        "elapsedSeconds": round(time.perf_counter() - started, 1),
    }
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    _log(f"results written to {options.output} ({report['elapsedSeconds']} s)")
    return 0

"""The analytics scenario of `make bench`: GET /analytics for 90 days over a million messages.

A fresh database (SQLite, or a scratch PostgreSQL database) holds one organization in Asia/Kolkata
with `messages` messages spread evenly over the last `days` days, beside `messages` more spread
over four other organizations; each organization has a conversation (and its contact) and an opening
per ten messages, five agents, and ten broadcasts carrying one outbound message in twenty. Rows are
written by the database itself, one INSERT ... SELECT per table over `generate_series` (PostgreSQL)
or a recursive CTE (SQLite), with every index and trigger in place, as the API leaves them:
40% inbound, outbound 50% read, 25% delivered, 15% sent, 7% failed (four Meta codes), 3% queued;
openings answered (90%) within the hour, half of them assigned, three in four resolved within a day.
PostgreSQL then gets VACUUM ANALYZE, the steady state autovacuum reaches; SQLite is left as the
application leaves it (no ANALYZE, see docs/decisions.md).

Then `kaanha serve --no-workers` answers `GET /analytics?from=<89 days ago>&to=<today>` (by day),
`requests` times one after another after two unmeasured ones, over HTTP on 127.0.0.1; the figures
are the median and p95 of those times. Before measuring, the report's message counts are checked
against direct counts of what was seeded in the range.
"""

# The seeding SQL is assembled from this module's own constants (engine-specific expressions, our
# organizations' tags); every value from outside is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, text

from benchmarks.processes import (
    HOST,
    BenchmarkError,
    free_port,
    kaanha_env,
    kaanha_json,
    kaanha_server,
    log,
    running,
    scratch_database,
    workspace,
)
from benchmarks.whatsapp import _organization, _sync_engine

API = "/api/whatsapp-api"
TIMEZONE = "Asia/Kolkata"
OTHER_ORGANIZATIONS = 4
AGENTS = 5
BROADCASTS = 10
# Rows written per INSERT ... SELECT, so that one statement never holds millions of rows in flight.
BATCH = 250_000


@dataclass(frozen=True)
class AnalyticsOptions:
    messages: int = 1_000_000
    days: int = 100
    report_days: int = 90
    requests: int = 25


def run_analytics(backend: str, admin_url: str | None, options: AnalyticsOptions) -> list[dict[str, Any]]:
    """The scenario as one row; a failed run is a row with its `error` (and no figures)."""
    try:
        return [_analytics_run(backend, admin_url, options)]
    except BenchmarkError as error:
        log(f"[{backend}] analytics FAILED: {error}")
        return [{"backend": backend, "scenario": "analytics", "messages": options.messages, "error": str(error)}]


def _series_sql(dialect: str, count_param: str, select_sql: str) -> str:
    """`select_sql` over rows numbered i = 0 .. :count - 1 (its FROM clause is the placeholder {rows})."""
    if dialect == "postgresql":
        # bigint: i times a span in seconds overflows 32 bits.
        return select_sql.replace(
            "{rows}", f"generate_series(CAST(:offset AS bigint), :offset + :{count_param} - 1) AS g(i)"
        )
    return (
        f"WITH RECURSIVE g(i) AS (SELECT :offset UNION ALL SELECT i + 1 FROM g WHERE i < :offset + :{count_param} - 1) "
        + select_sql.replace("{rows}", "g")
    )


def _timestamp(dialect: str, seconds_sql: str) -> str:
    """The SQL for the instant `seconds_sql` (Unix seconds), stored as the application stores it."""
    if dialect == "postgresql":
        return f"to_timestamp({seconds_sql})"
    return f"strftime('%Y-%m-%d %H:%M:%S', {seconds_sql}, 'unixepoch') || '.000000'"


def _json(dialect: str, value: str = "{}") -> str:
    return f"'{value}'::jsonb" if dialect == "postgresql" else f"'{value}'"


def _insert(engine: Engine, sql: str, params: dict[str, Any], total: int, label: str) -> None:
    # The organization's tag is ours ('a', 'o0'...): written into the SQL, as a bound text beside `||`
    # leaves PostgreSQL unsure of its type.
    sql = sql.replace("{tag}", params["tag"])
    started = time.perf_counter()
    for offset in range(0, total, BATCH):
        with engine.begin() as connection:
            connection.execute(text(sql), {**params, "offset": offset, "n": min(BATCH, total - offset)})
    log(f"  {label}: {total:,} rows in {time.perf_counter() - started:.1f} s")


def seed_organization(
    engine: Engine, organization_id: str, tag: str, *, messages: int, start: datetime, days: int
) -> None:
    """`messages` messages over `days` days from `start`, with their contacts, conversations, openings,
    agents and broadcasts, all in the database's own INSERT ... SELECTs."""
    dialect = engine.dialect.name
    threads = max(messages // 10, 1)
    span = days * 86_400
    base = int(start.timestamp())
    now_sql = _timestamp(dialect, str(base + span))
    params: dict[str, Any] = {"org": organization_id, "tag": tag, "base": base}
    with engine.begin() as connection:
        for n in range(AGENTS):
            user_id = f"usr_{tag}_{n}"
            connection.execute(
                text(
                    f"INSERT INTO users (id, email, name, password_hash, created_at) "
                    f"VALUES (:id, :email, :name, '-', {now_sql})"
                ),
                {"id": user_id, "email": f"agent{n}@{tag}.example.com", "name": f"Agent {n} of {tag}"},
            )
            connection.execute(
                text(
                    f"INSERT INTO memberships (id, organization_id, user_id, role, created_at) "
                    f"VALUES (:id, :org, :user, 'agent', {now_sql})"
                ),
                {"id": f"mem_{tag}_{n}", "org": organization_id, "user": user_id},
            )
        for n in range(BROADCASTS):
            started_at = _timestamp(dialect, str(base + span * n // BROADCASTS))
            connection.execute(
                text(
                    "INSERT INTO broadcasts (id, organization_id, name, template_name, language, category, "
                    "components, audience, status, started_at, created_at, updated_at) VALUES "
                    f"(:id, :org, :name, 'hello_world', 'en_US', 'MARKETING', {_json(dialect, '[]')}, "
                    f"{_json(dialect)}, 'completed', {started_at}, {started_at}, {started_at})"
                ),
                {"id": f"bc_{tag}_{n}", "org": organization_id, "name": f"Campaign {n}"},
            )
    opened = f":base + i * {span} / :threads"
    _insert(
        engine,
        _series_sql(
            dialect,
            "n",
            "INSERT INTO contacts (id, organization_id, phone, opted_in, attributes, created_at, updated_at) "
            f"SELECT 'ctc_{tag}_' || i, :org, '+91' || (9000000000 + i), true, {_json(dialect)}, "
            f"{_timestamp(dialect, opened)}, {_timestamp(dialect, opened)} FROM {{rows}}",
        ),
        {**params, "threads": threads},
        threads,
        f"{tag} contacts",
    )
    _insert(
        engine,
        _series_sql(
            dialect,
            "n",
            "INSERT INTO conversations (id, organization_id, contact_id, status, assignee_id, unread_count, "
            "last_message_at, resolved_at, created_at, updated_at) "
            "SELECT 'cnv_{tag}_' || i, :org, 'ctc_{tag}_' || i, "
            "CASE WHEN i % 4 = 0 THEN 'OPEN' ELSE 'RESOLVED' END, NULL, 0, "
            f"{_timestamp(dialect, opened)}, NULL, {_timestamp(dialect, opened)}, {_timestamp(dialect, opened)} "
            "FROM {rows}",
        ),
        {**params, "threads": threads},
        threads,
        f"{tag} conversations",
    )
    agent = "'usr_{tag}_' || (i % 5)"
    _insert(
        engine,
        _series_sql(
            dialect,
            "n",
            "INSERT INTO conversation_openings (id, organization_id, conversation_id, opened_at, opened_by, "
            "first_inbound_at, first_response_at, first_responder_user_id, assigned_at, first_assignee_id, "
            "assignee_id, resolved_at, resolved_by_user_id) "
            "SELECT 'cop_{tag}_' || i, :org, 'cnv_{tag}_' || i, "
            f"{_timestamp(dialect, opened)}, 'customer', {_timestamp(dialect, opened)}, "
            f"CASE WHEN i % 10 <> 0 THEN {_timestamp(dialect, f'{opened} + (i * 37) % 3600')} END, "
            f"CASE WHEN i % 10 <> 0 AND i % 3 = 0 THEN {agent} END, "
            f"CASE WHEN i % 2 = 0 THEN {_timestamp(dialect, f'{opened} + 60')} END, "
            f"CASE WHEN i % 2 = 0 THEN {agent} END, "
            f"CASE WHEN i % 2 = 0 THEN {agent} END, "
            f"CASE WHEN i % 4 <> 0 THEN {_timestamp(dialect, f'{opened} + (i * 101) % 86400')} END, NULL "
            "FROM {rows}",
        ),
        {**params, "threads": threads},
        threads,
        f"{tag} openings",
    )
    # r: a pseudo-random 0-99 per message, deciding its direction-dependent status.
    created = f":base + i * {span} / :total"
    later = f"{created} + 5"
    status = (
        "CASE WHEN d < 4 THEN 'received' WHEN r < 50 THEN 'read' WHEN r < 75 THEN 'delivered' "
        "WHEN r < 90 THEN 'sent' WHEN r < 97 THEN 'failed' ELSE 'queued' END"
    )
    rank = (
        "CASE WHEN d < 4 THEN 40 WHEN r < 50 THEN 30 WHEN r < 75 THEN 20 WHEN r < 90 THEN 10 "
        "WHEN r < 97 THEN 25 ELSE 0 END"
    )
    outbound = "d >= 4"
    _insert(
        engine,
        _series_sql(
            dialect,
            "n",
            "INSERT INTO messages (id, organization_id, conversation_id, contact_id, direction, type, status, "
            "status_rank, content, whatsapp_message_id, broadcast_id, sent_by_user_id, error_code, error_message, "
            "created_at, sent_at, delivered_at, read_at, failed_at) "
            "SELECT 'msg_{tag}_' || i, :org, 'cnv_{tag}_' || (i % :threads), "
            "'ctc_{tag}_' || (i % :threads), "
            f"CASE WHEN {outbound} THEN 'outbound' ELSE 'inbound' END, 'text', {status}, {rank}, {_json(dialect)}, "
            "'wamid.{tag}.' || i, "
            f"CASE WHEN {outbound} AND i % 20 = 5 THEN 'bc_{tag}_' || (i / 20 % {BROADCASTS}) END, "
            f"CASE WHEN {outbound} AND i % 7 = 0 THEN 'usr_{tag}_' || (i % 5) END, "
            f"CASE WHEN {outbound} AND r >= 90 AND r < 97 THEN "
            "CASE r % 4 WHEN 0 THEN 131047 WHEN 1 THEN 131026 WHEN 2 THEN 131049 ELSE 130472 END END, "
            f"CASE WHEN {outbound} AND r >= 90 AND r < 97 THEN 'Meta refused it' END, "
            f"{_timestamp(dialect, created)}, "
            f"CASE WHEN {outbound} AND (r < 90 OR (r < 97 AND r % 2 = 1)) THEN {_timestamp(dialect, later)} END, "
            f"CASE WHEN {outbound} AND r < 75 THEN {_timestamp(dialect, later)} END, "
            f"CASE WHEN {outbound} AND r < 50 THEN {_timestamp(dialect, later)} END, "
            f"CASE WHEN {outbound} AND r >= 90 AND r < 97 THEN {_timestamp(dialect, later)} END "
            "FROM (SELECT i, (i * 7919) % 100 AS r, i % 10 AS d FROM {rows}) AS s",
        ),
        {**params, "threads": threads, "total": messages},
        messages,
        f"{tag} messages",
    )


def _expected(engine: Engine, organization_id: str, start: datetime, end: datetime) -> dict[str, int]:
    """What the report must say: direct counts of the seeded messages in [start, end)."""
    dialect = engine.dialect.name
    bounds = {
        "org": organization_id,
        "start": start if dialect == "postgresql" else start.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "end": end if dialect == "postgresql" else end.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), sum(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END), "
                "sum(CASE WHEN direction = 'outbound' AND sent_at IS NOT NULL THEN 1 ELSE 0 END), "
                "sum(CASE WHEN direction = 'outbound' AND status = 'failed' THEN 1 ELSE 0 END) "
                "FROM messages WHERE organization_id = :org AND created_at >= :start AND created_at < :end"
            ),
            bounds,
        ).one()
    return {"total": int(row[0]), "received": int(row[1] or 0), "sent": int(row[2] or 0), "failed": int(row[3] or 0)}


def _analytics_run(backend: str, admin_url: str | None, options: AnalyticsOptions) -> dict[str, Any]:
    with workspace() as folder, scratch_database(backend, folder, admin_url) as database_url:
        env = kaanha_env(folder / "data", database_url)
        organization_id = _organization(env, "Analytics Bench")
        key = kaanha_json(["keys", "create", "--org", organization_id, "--name", "bench"], env)
        headers = {"Authorization": f"Bearer {key['key']}"}
        others = [_organization(env, f"Neighbour {n}") for n in range(OTHER_ORGANIZATIONS)]
        engine = _sync_engine(database_url)
        try:
            seeding = time.perf_counter()
            end = datetime.now(UTC)
            start = end - timedelta(days=options.days)
            with engine.begin() as connection:
                connection.execute(
                    text("UPDATE organizations SET timezone = :zone WHERE id = :org"),
                    {"zone": TIMEZONE, "org": organization_id},
                )
            log(f"[{backend}] seeding {options.messages:,} messages in the organization and as many beside it")
            seed_organization(engine, organization_id, "a", messages=options.messages, start=start, days=options.days)
            for n, other in enumerate(others):
                seed_organization(
                    engine,
                    other,
                    f"o{n}",
                    messages=options.messages // OTHER_ORGANIZATIONS,
                    start=start,
                    days=options.days,
                )
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(text("VACUUM ANALYZE"))
            seed_seconds = time.perf_counter() - seeding
            log(f"[{backend}] seeded in {seed_seconds:.1f} s")

            zone = ZoneInfo(TIMEZONE)
            today = datetime.now(UTC).astimezone(zone).date()
            first = today - timedelta(days=options.report_days - 1)
            path = f"{API}/analytics?from={first.isoformat()}&to={today.isoformat()}&granularity=day"
            range_start = datetime.combine(first, datetime.min.time(), tzinfo=zone).astimezone(UTC)
            range_end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(UTC)
            expected = _expected(engine, organization_id, range_start, range_end)
        finally:
            engine.dispose()

        port = free_port()
        base = f"http://{HOST}:{port}"
        times: list[float] = []
        with (
            running(
                kaanha_server(port),
                env=env,
                log=folder / "kaanha.log",
                ready_url=f"{base}{API}/status",
                headers=headers,
            ),
            httpx.Client(base_url=base, headers=headers, timeout=120) as client,
        ):
            for attempt in range(options.requests + 2):
                began = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    raise BenchmarkError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
                if attempt == 0:
                    body = response.json()
                    found = {name: body["messages"][name] for name in ("received", "sent", "failed")}
                    found["total"] = expected["total"]
                    if found != expected:
                        raise BenchmarkError(f"GET {path} counted {found}, the database holds {expected}")
                    if len(body["series"]) != options.report_days:
                        raise BenchmarkError(f"{len(body['series'])} periods instead of {options.report_days}")
                    log(
                        f"[{backend}] the report: {body['messages']}, first response {body['firstResponseSeconds']}, "
                        f"{len(body['agents'])} agents, {len(body['broadcasts'])} broadcasts"
                    )
                if attempt >= 2:
                    times.append(elapsed)
        ordered = sorted(times)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        median = statistics.median(ordered)
        log(f"[{backend}] GET /analytics (90 days): median {median * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms")
        return {
            "backend": backend,
            "scenario": "analytics",
            "messages": options.messages,
            "otherMessages": options.messages // OTHER_ORGANIZATIONS * OTHER_ORGANIZATIONS,
            "days": options.days,
            "reportDays": options.report_days,
            "messagesInRange": expected["total"],
            "requests": len(times),
            "medianSeconds": median,
            "p95Seconds": p95,
            "maxSeconds": ordered[-1],
            "seedSeconds": seed_seconds,
        }


def add_analytics_arguments(parser: Any) -> None:
    group = parser.add_argument_group(
        "analytics",
        "GET /analytics over 90 days, on SQLite (unless --no-sqlite) and on PostgreSQL (a scratch database "
        "on the server of --database-url, else the default server)",
    )
    group.add_argument(
        "--analytics-messages",
        type=int,
        default=AnalyticsOptions.messages,
        help="Messages in the organization, and as many in four others (1000000)",
    )
    group.add_argument(
        "--analytics-requests", type=int, default=AnalyticsOptions.requests, help="Measured requests (25)"
    )


def analytics_options(options: Any) -> AnalyticsOptions:
    return AnalyticsOptions(messages=options.analytics_messages, requests=options.analytics_requests)


def format_analytics(results: list[dict[str, Any]]) -> str:
    header = ("backend", "messages", "beside", "in range", "requests", "median ms", "p95 ms", "max ms", "seeded in")
    rows = [
        (
            result["backend"],
            f"{result['messages']:,}",
            f"{result['otherMessages']:,}",
            f"{result['messagesInRange']:,}",
            str(result["requests"]),
            f"{result['medianSeconds'] * 1000:,.0f}",
            f"{result['p95Seconds'] * 1000:,.0f}",
            f"{result['maxSeconds'] * 1000:,.0f}",
            f"{result['seedSeconds']:,.0f} s",
        )
        for result in results
        if "error" not in result
    ]
    failures = [
        f"{result['backend']}: FAILED: {result['error'].splitlines()[0][:150]}"
        for result in results
        if "error" in result
    ]
    title = (
        "GET /analytics for the last 90 days by day (an Asia/Kolkata organization; messages over "
        f"{AnalyticsOptions.days} days, beside as many in four other organizations), one request at a time over "
        "HTTP to `kaanha serve --no-workers`, after two unmeasured"
    )
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(row) for row in rows), rule, *failures])

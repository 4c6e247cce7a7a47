"""Analytics rules: what each figure counts, rolled up from the repository's aggregates into periods.

Definitions (docs/decisions.md, "Analytics"): messages are counted by when they were created, in the
range; `sent`, `delivered` and `read` are a funnel (a read message counts in all three); conversations
count openings (created, or reopened after RESOLVED) opened (by the customer or by us), first assigned
(credited to that first assignee), resolved (credited to the assignee then) in the range; response and
resolution times are of the first responses given and the resolutions made in the range, without the
openings migration 0007 backfilled from history. `from`/`to` are instants (UTC on the wire); series
periods are local dates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.ai_agents.service import agent_counts
from kaanha.analytics.periods import ReportRange, report_range, zone_of
from kaanha.analytics.repository import AnalyticsRepository, FailureRow, MessageRow, OpeningCounts
from kaanha.analytics.schemas import (
    SERIES_COLUMNS,
    AgentFigures,
    AnalyticsOut,
    BroadcastFunnel,
    ConversationFigures,
    FailureCount,
    MessageFigures,
    Percentiles,
    SeriesPoint,
)
from kaanha.kit.clock import now
from kaanha.whatsapp.cloud_api.errors import explain

NO_CODE_REASON = (
    "Failed without an error code from Meta: not handed over (a broadcast cancelled, a send given up) or "
    "its sending could not be confirmed"
)


def _rate(part: int, whole: int) -> float | None:
    # No messages is no rate at all, not a rate of 0: a chart shows a gap, not a collapse.
    return round(part / whole, 4) if whole else None


async def _report(
    repository: AnalyticsRepository, start: str | None, end: str | None, granularity: str | None
) -> ReportRange:
    await repository.prepare()
    zone = zone_of(await repository.timezone())
    return report_range(start=start, end=end, granularity=granularity, zone=zone, today_at=now())


def _series(report: ReportRange, rows: list[MessageRow], openings: OpeningCounts) -> list[SeriesPoint]:
    points: dict[date, SeriesPoint] = {day: SeriesPoint(period_start=day.isoformat()) for day in report.periods()}
    first_day, last_day = report.day_numbers()

    def point(day_number: int) -> SeriesPoint:
        # Every row is in the range, but SQLite reads times to the millisecond, rounded: 23:59:59.9996 on
        # the range's last day lands on the next. Such a row belongs to the nearest day of the range, and
        # the series never grows a period the range doesn't have.
        return points[report.period_of_day(min(max(day_number, first_day), last_day))]

    for row in rows:
        target = point(row.day)
        target.sent += row.sent
        target.delivered += row.delivered
        target.read += row.read
        target.failed += row.failed
        target.received += row.received
    for day_number, count in openings.opened_by_day.items():
        point(day_number).conversations_opened += count
    for day_number, count in openings.resolved_by_day.items():
        point(day_number).conversations_resolved += count
    return [points[period] for period in sorted(points)]


def _failures(rows: list[FailureRow]) -> list[FailureCount]:
    failures = []
    for row in rows:
        code = row.code
        # Our explanation of Meta's code says what to do; for codes we don't know, Meta's own words.
        reason = NO_CODE_REASON if code is None else explain(code) or row.error_message or f"Meta's error {code}"
        failures.append(FailureCount(code=code, reason=reason, count=row.count))
    return sorted(failures, key=lambda failure: (-failure.count, failure.code is None, failure.code or 0))


async def get_analytics(
    session: AsyncSession, *, organization_id: str, start: str | None, end: str | None, granularity: str | None
) -> AnalyticsOut:
    """The report for [start, end] (dates are local days, `end` included; or instants) in the
    organization's time zone, by `granularity`; the last 30 days by day when not given."""
    repository = AnalyticsRepository(session, organization_id)
    report = await _report(repository, start, end, granularity)
    figures = await repository.message_figures(report)
    openings = await repository.opening_counts(report)
    first_response, first_response_by_user = await repository.first_response_times(report)
    resolution = await repository.resolution_times(report)
    series = _series(report, figures.days, openings)
    sent_by_user = figures.sent_by_user
    members = await repository.members()
    known = {user_id for user_id, _name, _role in members}
    active = {
        user_id
        for user_id in [
            *sent_by_user,
            *first_response_by_user,
            *openings.assigned_by_assignee,
            *openings.resolved_by_assignee,
        ]
        if user_id is not None and user_id not in known
    }
    former = await repository.user_names(active)
    people = [*members, *sorted(((user_id, former.get(user_id), None) for user_id in active), key=str)]
    agents = [
        AgentFigures(
            user_id=user_id,
            name=name,
            role=role,
            conversations_assigned=openings.assigned_by_assignee.get(user_id, 0),
            conversations_resolved=openings.resolved_by_assignee.get(user_id, 0),
            messages_sent=sent_by_user.get(user_id, 0),
            first_response_median_seconds=_seconds(first_response_by_user.get(user_id)),
        )
        for user_id, name, role in people
    ]

    sent = sum(point.sent for point in series)
    delivered = sum(point.delivered for point in series)
    return AnalyticsOut(
        from_=report.start,
        to=report.end,
        granularity=report.granularity,
        timezone=report.timezone,
        messages=MessageFigures(
            sent=sent,
            delivered=delivered,
            read=sum(point.read for point in series),
            failed=sum(point.failed for point in series),
            received=sum(point.received for point in series),
            delivery_rate=_rate(delivered, sent),
            read_rate=_rate(sum(point.read for point in series), delivered),
        ),
        failures_by_code=_failures(figures.failures),
        conversations=ConversationFigures(
            opened=sum(openings.opened_by_day.values()),
            opened_by_customer=openings.opened_by.get("customer", 0),
            opened_by_business=openings.opened_by.get("business", 0),
            assigned=sum(openings.assigned_by_assignee.values()),
            resolved=sum(openings.resolved_by_day.values()),
        ),
        first_response_seconds=Percentiles(median=_seconds(first_response.median), p90=_seconds(first_response.p90)),
        resolution_seconds=Percentiles(median=_seconds(resolution.median), p90=_seconds(resolution.p90)),
        agents=agents,
        ai_agents=await agent_counts(session, organization_id=organization_id, start=report.start, end=report.end),
        broadcasts=[
            BroadcastFunnel(
                id=row.id,
                name=row.name,
                template_name=row.template_name,
                status=row.status,
                started_at=row.started_at,
                recipients=row.recipients,
                sent=row.sent,
                delivered=row.delivered,
                read=row.read,
                failed=row.failed,
                replied=row.replied,
            )
            for row in await repository.broadcasts(report)
        ],
        series=series,
    )


def _seconds(value: float | None) -> float | None:
    # Tenths of a second: SQLite's julianday arithmetic is exact to well under that, and people read minutes.
    return None if value is None else round(value, 1)


async def get_series(
    session: AsyncSession, *, organization_id: str, start: str | None, end: str | None, granularity: str | None
) -> tuple[ReportRange, list[SeriesPoint]]:
    """The report's series alone (for the CSV export): the same range rules and the same counts."""
    repository = AnalyticsRepository(session, organization_id)
    report = await _report(repository, start, end, granularity)
    rows = await repository.message_days(report)
    openings = await repository.opening_counts(report)
    return report, _series(report, rows, openings)


def series_csv(points: list[SeriesPoint]) -> Iterator[str]:
    """The series as CSV lines, a header first; every value is a date or a number, so nothing needs quoting."""
    yield ",".join(SERIES_COLUMNS) + "\r\n"
    for point in points:
        values = point.model_dump(by_alias=True)
        yield ",".join(str(values[column]) for column in SERIES_COLUMNS) + "\r\n"

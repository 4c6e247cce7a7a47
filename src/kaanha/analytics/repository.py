"""Analytics queries: aggregates over one organization's messages, conversation openings and broadcasts.

Every query filters on `organization_id` and a time range first, so it reads one index range
(`messages (organization_id, created_at)`, the openings' `(organization_id, <time>)` indexes), and
returns aggregated rows only: per local day, per failure code, per person. Percentiles come from
`cume_dist()` over the durations in SQL, so no list of durations ever reaches Python. The SQL is the
same on SQLite and PostgreSQL apart from two expressions (a timestamp's local day, the seconds
between two) and the pass over the messages (one GROUP BY on PostgreSQL; on SQLite, which groups by
sorting, a query a day and two small ones through partial indexes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Integer,
    Interval,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kaanha.analytics.periods import EPOCH, ReportRange
from kaanha.models import (
    Broadcast,
    BroadcastRecipient,
    ConversationOpening,
    Membership,
    Message,
    Organization,
    User,
)

SECONDS_PER_DAY = 86_400
# PostgreSQL's failure key of a failed message without a code from Meta (cancelled, or unconfirmed).
NO_CODE = -1
UNIX_EPOCH_JULIAN_DAY = 2440587.5


@dataclass
class MessageRow:
    """One local day's message counts."""

    day: int
    sent: int
    delivered: int
    read: int
    failed: int
    received: int


@dataclass
class FailureRow:
    code: int | None
    count: int
    error_message: str | None


@dataclass
class MessageFigures:
    days: list[MessageRow]
    failures: list[FailureRow]
    sent_by_user: dict[str, int]


@dataclass
class Percentiles:
    median: float | None = None
    p90: float | None = None


@dataclass
class BroadcastRow:
    id: str
    name: str
    template_name: str
    status: str
    started_at: datetime
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    replied: int = 0


@dataclass
class OpeningCounts:
    opened_by_day: dict[int, int] = field(default_factory=dict)
    # "customer" / "business" (ConversationOpening.opened_by): who opened them, over the whole range.
    opened_by: dict[str, int] = field(default_factory=dict)
    resolved_by_day: dict[int, int] = field(default_factory=dict)
    resolved_by_assignee: dict[str | None, int] = field(default_factory=dict)
    assigned_by_assignee: dict[str | None, int] = field(default_factory=dict)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class AnalyticsRepository:
    """Aggregates for one organization; like every repository, it can't see another's rows."""

    def __init__(self, session: AsyncSession, organization_id: str) -> None:
        self.session = session
        self.organization_id = organization_id
        self.dialect = session.bind.dialect.name if session.bind else "sqlite"

    # --- expressions that differ by engine ---------------------------------------------------------

    def _seconds_between(self, later: Any, earlier: Any) -> ColumnElement[float]:
        if self.dialect == "postgresql":
            return func.date_part("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * SECONDS_PER_DAY

    def _local_day(self, column: InstrumentedAttribute[Any], report: ReportRange) -> ColumnElement[int]:
        """The local day number of `column` (days since 1970-01-01 in the report's zone).

        Each row's UTC offset is the one in force at its instant (a CASE over the DST segments). This
        expression runs once per message in the range, so it is the cheapest exact one of each engine.
        """
        segments = report.segments()
        postgres = self.dialect == "postgresql"

        def amount(seconds: int) -> Any:
            return literal(timedelta(seconds=seconds), Interval()) if postgres else seconds

        offset: Any
        if len(segments) == 1:
            offset = amount(segments[0].offset_seconds)
        else:
            offset = case(
                *[
                    (column < literal(segment.until, column.type), amount(segment.offset_seconds))
                    for segment in segments[:-1]
                ],
                else_=amount(segments[-1].offset_seconds),
            )
        day: ColumnElement[int]
        if postgres:
            # Timestamp arithmetic on integers, exact to the microsecond (epoch as a double is not quite).
            local = func.timezone("UTC", column) + offset
            day = cast(cast(local, Date) - literal(EPOCH, Date()), Integer)
        else:
            # SQLite keeps times as text; julianday() parses them to whole milliseconds (its iJD), so
            # half a millisecond before truncating gives the exact second, for any stored precision.
            seconds = (func.julianday(column) - UNIX_EPOCH_JULIAN_DAY) * SECONDS_PER_DAY + 0.0005 + offset
            day = cast(seconds, Integer) // SECONDS_PER_DAY
        return day

    def _tenant_before_narrower(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """The tenant filter where a far more selective condition follows (the range's broadcasts): SQLite,
        which keeps no statistics, is told it is likely() so that it starts from that condition."""
        tenant = column == self.organization_id
        return func.likely(tenant, type_=Boolean) if self.dialect == "sqlite" else tenant

    def _one_of(self, column: InstrumentedAttribute[Any], ids: Select[str]) -> ColumnElement[bool]:
        """`column` is one of the ids `ids` selects, as index lookups of those ids. PostgreSQL merge-joins
        an IN (subquery) along the whole index (every organization's rows); `= ANY(ARRAY(subquery))`
        gives it the ids first, for one bitmap scan of theirs."""
        if self.dialect == "postgresql":
            return column == any_(func.array(ids.scalar_subquery()))
        return column.in_(ids)

    def _in_range(self, column: InstrumentedAttribute[Any], report: ReportRange) -> ColumnElement[bool]:
        return and_(column >= report.start, column < report.end)

    # --- queries ---------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Settings for this transaction's aggregates, before the first of them."""
        if self.dialect == "postgresql":
            # JIT compilation costs tens of milliseconds a query and would save less on the ranges a
            # report reads (it starts above a planner cost, which a 90-day scan of a busy number exceeds).
            await self.session.execute(text("SET LOCAL jit = off"))

    async def timezone(self) -> str | None:
        result: str | None = await self.session.scalar(
            select(Organization.timezone).where(Organization.id == self.organization_id)
        )
        return result

    def _message_counts(self) -> list[ColumnElement[int]]:
        outbound = Message.direction == "outbound"
        return [
            _count_if(and_(outbound, Message.sent_at.is_not(None))),
            _count_if(and_(outbound, Message.delivered_at.is_not(None))),
            _count_if(and_(outbound, Message.read_at.is_not(None))),
            _count_if(and_(outbound, Message.status == "failed")),
            _count_if(Message.direction == "inbound"),
        ]

    async def message_days(self, report: ReportRange) -> list[MessageRow]:
        """Messages created in the range, per local day (the series alone, for the CSV export).

        `sent`, `delivered` and `read` are a funnel (a read message counts in all three, as broadcasts
        count); `failed` is a final status. PostgreSQL groups by the local day (a hash aggregate).
        SQLite can only group by sorting, which cost more than reading the rows, so it runs one
        aggregate a day over that day's index range, with the day's bounds worked out here (DST
        included): no sort, and no day arithmetic in SQL.
        """
        if self.dialect == "postgresql":
            day = self._local_day(Message.created_at, report).label("day")
            rows = [
                tuple(row)
                for row in await self.session.execute(
                    select(day, *self._message_counts())
                    .where(Message.organization_id == self.organization_id, self._in_range(Message.created_at, report))
                    .group_by(day)
                )
            ]
        else:
            query = select(*self._message_counts()).where(
                Message.organization_id == self.organization_id,
                Message.created_at >= bindparam("low", type_=Message.created_at.type),
                Message.created_at < bindparam("high", type_=Message.created_at.type),
            )
            rows = []
            for day_number, low, high in report.days():
                counts = (await self.session.execute(query, {"low": low, "high": high})).one()
                if any(counts):
                    rows.append((day_number, *counts))
        return [MessageRow(*(int(value) for value in row)) for row in rows]

    async def message_figures(self, report: ReportRange) -> MessageFigures:
        """Messages created in the range: per local day, failures by code, and sent per person.

        The report's one pass over every message of the range. On PostgreSQL a single hash aggregate by
        day, failure code and sender gives all three (measured faster than the day alone plus the two
        small queries). On SQLite the days come from `message_days` and the other two from partial
        indexes of the few rows they need.
        """
        if self.dialect != "postgresql":
            return MessageFigures(
                days=await self.message_days(report),
                failures=await self.failures(report),
                sent_by_user=await self.sent_by_user(report),
            )
        failed = Message.status == "failed"
        day = self._local_day(Message.created_at, report).label("day")
        failure_key = case((failed, func.coalesce(Message.error_code, NO_CODE)), else_=None).label("failure_key")
        rows = await self.session.execute(
            select(
                day,
                failure_key,
                Message.sent_by_user_id,
                *self._message_counts(),
                func.max(case((failed, Message.error_message), else_=None)),
            )
            .where(Message.organization_id == self.organization_id, self._in_range(Message.created_at, report))
            .group_by(day, failure_key, Message.sent_by_user_id)
        )
        days: dict[int, MessageRow] = {}
        failures: dict[int, FailureRow] = {}
        sent_by_user: dict[str, int] = {}
        for day_number, key, user_id, sent, delivered, read, failed_count, received, error_message in rows:
            counts = days.setdefault(int(day_number), MessageRow(int(day_number), 0, 0, 0, 0, 0))
            counts.sent += int(sent)
            counts.delivered += int(delivered)
            counts.read += int(read)
            counts.failed += int(failed_count)
            counts.received += int(received)
            if key is not None and failed_count:
                failure = failures.setdefault(int(key), FailureRow(None if key == NO_CODE else int(key), 0, None))
                failure.count += int(failed_count)
                if error_message and (failure.error_message is None or error_message > failure.error_message):
                    failure.error_message = error_message
            if user_id is not None and sent:
                sent_by_user[user_id] = sent_by_user.get(user_id, 0) + int(sent)
        return MessageFigures(days=list(days.values()), failures=list(failures.values()), sent_by_user=sent_by_user)

    async def failures(self, report: ReportRange) -> list[FailureRow]:
        """Failed messages created in the range by Meta's code (None without one), with Meta's words
        (SQLite's report: through the partial index of failed messages, a few percent of the range)."""
        rows = await self.session.execute(
            select(Message.error_code, func.count(), func.max(Message.error_message))
            .where(
                Message.organization_id == self.organization_id,
                # A literal, not a parameter, so that the partial index (status = 'failed') applies.
                Message.status == literal_column("'failed'"),
                Message.direction == "outbound",
                self._in_range(Message.created_at, report),
            )
            .group_by(Message.error_code)
        )
        return [FailureRow(code=code, count=int(count), error_message=message) for code, count, message in rows]

    async def sent_by_user(self, report: ReportRange) -> dict[str, int]:
        """Messages people sent (reached `sent`) that were created in the range, per person (SQLite's
        report: through the partial index of messages that have a sender)."""
        rows = await self.session.execute(
            select(Message.sent_by_user_id, func.count(Message.sent_at))
            .where(
                Message.organization_id == self.organization_id,
                Message.sent_by_user_id.is_not(None),
                Message.direction == "outbound",
                self._in_range(Message.created_at, report),
            )
            .group_by(Message.sent_by_user_id)
        )
        return {str(user_id): int(count) for user_id, count in rows if count}

    async def opening_counts(self, report: ReportRange) -> OpeningCounts:
        """Openings opened (by day and by who opened them), resolved (by day and by the assignee at
        resolution) and first assigned (by whom it went to) in the range."""
        counts = OpeningCounts()
        tenant = ConversationOpening.organization_id == self.organization_id
        opened_day = self._local_day(ConversationOpening.opened_at, report).label("day")
        for day, opened_by, count in await self.session.execute(
            select(opened_day, ConversationOpening.opened_by, func.count())
            .where(tenant, self._in_range(ConversationOpening.opened_at, report))
            .group_by(opened_day, ConversationOpening.opened_by)
        ):
            counts.opened_by_day[int(day)] = counts.opened_by_day.get(int(day), 0) + int(count)
            counts.opened_by[opened_by] = counts.opened_by.get(opened_by, 0) + int(count)
        resolved_day = self._local_day(ConversationOpening.resolved_at, report).label("day")
        for day, assignee_id, count in await self.session.execute(
            select(resolved_day, ConversationOpening.assignee_id, func.count())
            .where(tenant, self._in_range(ConversationOpening.resolved_at, report))
            .group_by(resolved_day, ConversationOpening.assignee_id)
        ):
            counts.resolved_by_day[int(day)] = counts.resolved_by_day.get(int(day), 0) + int(count)
            counts.resolved_by_assignee[assignee_id] = counts.resolved_by_assignee.get(assignee_id, 0) + int(count)
        for assignee_id, count in await self.session.execute(
            select(ConversationOpening.first_assignee_id, func.count())
            .where(tenant, self._in_range(ConversationOpening.assigned_at, report))
            .group_by(ConversationOpening.first_assignee_id)
        ):
            counts.assigned_by_assignee[assignee_id] = int(count)
        return counts

    async def _percentiles(
        self, duration: ColumnElement[float], time_column: InstrumentedAttribute[Any], report: ReportRange
    ) -> Percentiles:
        """Median and p90 of `duration` over the openings whose `time_column` is in the range, leaving out
        those migration 0007 backfilled (their opening time is the conversation's creation).

        Nearest rank: the p-th percentile is the smallest duration that at least p of all durations are
        at most, i.e. the smallest with cume_dist() >= p; an observed value, never an interpolation.
        """
        durations = (
            select(duration.label("seconds"))
            .where(
                ConversationOpening.organization_id == self.organization_id,
                self._in_range(time_column, report),
                ConversationOpening.backfilled.is_(False),
            )
            .subquery()
        )
        ranked = select(
            durations.c.seconds, func.cume_dist().over(order_by=durations.c.seconds).label("rank")
        ).subquery()
        median, p90 = (
            await self.session.execute(
                select(
                    func.min(case((ranked.c.rank >= 0.5, ranked.c.seconds), else_=None)),
                    func.min(case((ranked.c.rank >= 0.9, ranked.c.seconds), else_=None)),
                )
            )
        ).one()
        return Percentiles(median=None if median is None else float(median), p90=None if p90 is None else float(p90))

    async def first_response_times(self, report: ReportRange) -> tuple[Percentiles, dict[str, float]]:
        """First responses given in the range (seconds from the customer's first message of the opening):
        median and p90, and each responder's median."""
        opening = ConversationOpening
        duration = self._seconds_between(opening.first_response_at, opening.first_inbound_at)
        overall = await self._percentiles(duration, opening.first_response_at, report)
        durations = (
            select(duration.label("seconds"), opening.first_responder_user_id.label("user_id"))
            .where(
                opening.organization_id == self.organization_id,
                self._in_range(opening.first_response_at, report),
                opening.first_responder_user_id.is_not(None),
                opening.backfilled.is_(False),
            )
            .subquery()
        )
        ranked = select(
            durations.c.user_id,
            durations.c.seconds,
            func.cume_dist().over(partition_by=durations.c.user_id, order_by=durations.c.seconds).label("rank"),
        ).subquery()
        per_user = {
            user_id: float(seconds)
            for user_id, seconds in await self.session.execute(
                select(ranked.c.user_id, func.min(case((ranked.c.rank >= 0.5, ranked.c.seconds), else_=None))).group_by(
                    ranked.c.user_id
                )
            )
        }
        return overall, per_user

    async def resolution_times(self, report: ReportRange) -> Percentiles:
        """Openings resolved in the range: seconds from opening to resolution."""
        duration = self._seconds_between(ConversationOpening.resolved_at, ConversationOpening.opened_at)
        return await self._percentiles(duration, ConversationOpening.resolved_at, report)

    async def members(self) -> list[tuple[str, str | None, str | None]]:
        """(user id, name, role) of the organization's members."""
        rows = await self.session.execute(
            select(Membership.user_id, User.name, Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == self.organization_id)
            .order_by(User.name, Membership.user_id)
        )
        return [(user_id, name, role) for user_id, name, role in rows]

    async def user_names(self, user_ids: set[str]) -> dict[str, str]:
        """Names of people who appear in this organization's figures but are no longer members."""
        if not user_ids:
            return {}
        rows = await self.session.execute(select(User.id, User.name).where(User.id.in_(sorted(user_ids))))
        return {str(user_id): str(name) for user_id, name in rows.tuples()}

    async def broadcasts(self, report: ReportRange) -> list[BroadcastRow]:
        """Broadcasts started in the range with their funnel, counted as GET /broadcasts/{id} counts
        (broadcasts.repository.message_tallies and recipient_tallies), for all of them in three queries
        that select the range's broadcasts in SQL (however many there are, no list of ids is sent)."""
        started = and_(Broadcast.organization_id == self.organization_id, self._in_range(Broadcast.started_at, report))
        found = {
            row.id: BroadcastRow(
                id=row.id,
                name=row.name,
                template_name=row.template_name,
                status=row.status,
                started_at=row.started_at,
            )
            for row in await self.session.execute(
                select(Broadcast.id, Broadcast.name, Broadcast.template_name, Broadcast.status, Broadcast.started_at)
                .where(started)
                .order_by(Broadcast.started_at, Broadcast.id)
            )
        }
        if not found:
            return []
        for broadcast_id, sent, delivered, read, failed in await self.session.execute(
            select(
                Message.broadcast_id,
                func.count(Message.sent_at),
                func.count(Message.delivered_at),
                func.count(Message.read_at),
                _count_if(Message.status == "failed"),
            )
            .where(
                self._tenant_before_narrower(Message.organization_id),
                # Stated, so that the partial index of broadcast messages visibly applies.
                Message.broadcast_id.is_not(None),
                self._one_of(Message.broadcast_id, select(Broadcast.id).where(started)),
            )
            .group_by(Message.broadcast_id)
        ):
            if broadcast_id in found:  # one started between the two reads is left for the next report
                row = found[broadcast_id]
                row.sent, row.delivered, row.read, row.failed = int(sent), int(delivered), int(read), int(failed)
        for broadcast_id, recipients, replied in await self.session.execute(
            select(BroadcastRecipient.broadcast_id, func.count(), func.count(BroadcastRecipient.replied_at))
            .where(
                self._tenant_before_narrower(BroadcastRecipient.organization_id),
                self._one_of(BroadcastRecipient.broadcast_id, select(Broadcast.id).where(started)),
            )
            .group_by(BroadcastRecipient.broadcast_id)
        ):
            if broadcast_id in found:
                found[broadcast_id].recipients, found[broadcast_id].replied = int(recipients), int(replied)
        return list(found.values())

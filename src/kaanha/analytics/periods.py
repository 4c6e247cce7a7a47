"""The range and periods of a report in the organization's time zone: parsing, DST offsets, local days.

SQL groups rows by *local day number* (days since 1970-01-01 in the organization's time zone), which is
`(unix seconds + UTC offset) // 86400`. The offset changes at DST transitions, so the range is cut into
segments of constant offset (`offset_segments`, found with zoneinfo) and the SQL picks each row's offset
with a CASE on its timestamp; half-hour and 45-minute zones (Asia/Kolkata is +05:30) work the same way.
Weeks (from Monday) and months are whole local days, so Python rolls days up into them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kaanha.errors import InvalidRequest

Granularity = str
GRANULARITIES = ("day", "week", "month")
# A report reads every message of its range once; these keep one request's work bounded (and a daily
# series readable). Longer views are weekly or monthly.
MAX_DAYS = {"day": 366, "week": 731, "month": 731}
DEFAULT_DAYS = 30
# Dates outside these years are typing mistakes, not reports; bounding them also keeps every local
# midnight, offset and next period well inside what `datetime` can hold (year 1 to 9999).
MIN_YEAR = 2000
MAX_YEAR = 2100
EPOCH = date(1970, 1, 1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Offsets are sampled this often to find DST transitions (zones change at most a few times a year).
_SAMPLE = timedelta(hours=6)


class InvalidAnalyticsRange(InvalidRequest):
    code = "invalid_range"


class InvalidGranularity(InvalidRequest):
    code = "invalid_granularity"


class RangeTooLong(InvalidRequest):
    code = "range_too_long"


@dataclass(frozen=True)
class Segment:
    """From the previous segment's `until` (or the range's start) to `until` (None: the range's end)."""

    until: datetime | None
    offset_seconds: int


@dataclass(frozen=True)
class ReportRange:
    """[start, end) in UTC, read in `zone`, cut into `granularity` periods."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    granularity: Granularity

    @property
    def timezone(self) -> str:
        return self.zone.key

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def segments(self) -> list[Segment]:
        return offset_segments(self.start, self.end, self.zone)

    def day_numbers(self) -> tuple[int, int]:
        """The range's first and last local day, as day numbers (days since 1970-01-01)."""
        first = self.local(self.start).date()
        last = self.local(self.end - timedelta(microseconds=1)).date()
        return (first - EPOCH).days, (last - EPOCH).days

    def days(self) -> list[tuple[int, datetime, datetime]]:
        """Each local day of the range: its day number and the instants [low, high) it covers in the range."""
        first, last = self.day_numbers()
        found = []
        for number in range(first, last + 1):
            day = EPOCH + timedelta(days=number)
            low = max(self.start, local_midnight(day, self.zone))
            high = min(self.end, local_midnight(day + timedelta(days=1), self.zone))
            found.append((number, low, high))
        return found

    def period_of_day(self, day_number: int) -> date:
        return period_start(EPOCH + timedelta(days=day_number), self.granularity)

    def periods(self) -> list[date]:
        """Every period the range touches, in order, its first local day each (Mondays, the 1st)."""
        first = period_start(self.local(self.start).date(), self.granularity)
        last = self.local(self.end - timedelta(microseconds=1)).date()
        found = []
        current = first
        while current <= last:
            found.append(current)
            current = next_period(current, self.granularity)
        return found


def zone_of(name: str | None) -> ZoneInfo:
    """The organization's zone; UTC if it names none that this system knows."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) the local day starts. Where midnight is skipped by DST, the instant just after."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def period_start(day: date, granularity: Granularity) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, granularity: Granularity) -> date:
    if granularity == "week":
        return start + timedelta(days=7)
    if granularity == "month":
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def _check_year(value: date | datetime, name: str, text: str) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InvalidAnalyticsRange(f"'{name}' must be in the years {MIN_YEAR} to {MAX_YEAR}, not {text!r}")


def _parse_bound(text: str, zone: ZoneInfo, *, name: str, end: bool) -> datetime:
    """A date is a whole local day (`to` includes it); a datetime is an instant and needs its offset."""
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidAnalyticsRange(f"'{name}' is not a real date: {text!r}") from None
        _check_year(day, name, text)
        return local_midnight(day + timedelta(days=1) if end else day, zone)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidAnalyticsRange(
            f"'{name}' must be a date (YYYY-MM-DD, a day in the organization's time zone) or a datetime "
            f"with its offset (2026-11-01T09:00:00+05:30), not {text!r}"
        ) from None
    if instant.tzinfo is None:
        raise InvalidAnalyticsRange(
            f"'{name}' needs its UTC offset (Z or +05:30): a bare local time is ambiguous across DST changes"
        )
    _check_year(instant, name, text)
    return instant.astimezone(UTC)


def report_range(
    *, start: str | None, end: str | None, granularity: str | None, zone: ZoneInfo, today_at: datetime
) -> ReportRange:
    """The range asked for; by default the last 30 local days, today included, by day."""
    try:
        return _report_range(start=start, end=end, granularity=granularity, zone=zone, today_at=today_at)
    except (OverflowError, ValueError) as error:
        # The years are bounded above; this is the net under any date arithmetic they still don't cover.
        raise InvalidAnalyticsRange(
            f"The range can't be worked out ({error}): give dates in the years {MIN_YEAR} to {MAX_YEAR}"
        ) from None


def _report_range(
    *, start: str | None, end: str | None, granularity: str | None, zone: ZoneInfo, today_at: datetime
) -> ReportRange:
    chosen = (granularity or "day").strip().lower()
    if chosen not in GRANULARITIES:
        raise InvalidGranularity(f"granularity must be day, week or month, not {granularity!r}")
    today = today_at.astimezone(zone).date()
    upper = _parse_bound(end, zone, name="to", end=True) if end else local_midnight(today + timedelta(days=1), zone)
    if start:
        lower = _parse_bound(start, zone, name="from", end=False)
    else:
        last_day = (upper - timedelta(microseconds=1)).astimezone(zone).date()
        lower = local_midnight(last_day - timedelta(days=DEFAULT_DAYS - 1), zone)
    if lower >= upper:
        raise InvalidAnalyticsRange("'from' must come before 'to' (a date 'to' includes that whole day)")
    if upper - lower > timedelta(days=MAX_DAYS[chosen], hours=1):  # an hour of slack for a DST day
        raise RangeTooLong(
            f"A {chosen} report covers at most {MAX_DAYS[chosen]} days; ask for a shorter range"
            + (" or a weekly or monthly one" if chosen == "day" else "")
        )
    return ReportRange(start=lower, end=upper, zone=zone, granularity=chosen)


def _offset(instant: datetime, zone: ZoneInfo) -> int:
    offset = instant.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def offset_segments(start: datetime, end: datetime, zone: ZoneInfo) -> list[Segment]:
    """The UTC offsets in force over [start, end), with the instants they change at (to the second)."""
    segments: list[Segment] = []
    current = _offset(start, zone)
    at = start
    while at < end:
        step = min(at + _SAMPLE, end)
        offset = _offset(step, zone) if step < end else _offset(end - timedelta(seconds=1), zone)
        if offset != current:
            low, high = at, step  # the offset is `current` at low and another one by high
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _offset(middle, zone) == current:
                    low = middle
                else:
                    high = middle
            change = high.replace(microsecond=0)
            segments.append(Segment(until=change, offset_seconds=current))
            current = _offset(change, zone)
        at = step
    segments.append(Segment(until=None, offset_seconds=current))
    return segments

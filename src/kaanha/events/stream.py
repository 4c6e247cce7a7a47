"""The live event stream: where a reader resumes, which events it may see, and following the log as it grows.

A reader follows one organization's event log by `seq`. Sequence numbers are taken when a row is
inserted, not when its transaction commits, so on PostgreSQL an event with a lower seq can become
visible after one with a higher seq. A follower therefore never trusts "everything above the
highest seq I sent": it re-reads a look-back window above a floor and sends what it has not seen
(`SeenWindow`). Reads use a fresh short session per poll, so an idle stream holds no connection
and no transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.auth.principal import MissingScope
from kaanha.database import Database, is_transient
from kaanha.errors import InvalidRequest, KaanhaError
from kaanha.events import notify
from kaanha.events.types import PING, READ_SCOPE_BY_FAMILY, read_scope
from kaanha.kit.clock import now
from kaanha.models import Event

logger = logging.getLogger("kaanha.events")

# How often a follower reads the log when nothing in this process woke it (events committed by
# `kaanha worker` or another `kaanha serve` are only seen this way).
POLL_SECONDS = 1.0
# A transaction that took its seq this long before a later one committed may still commit and be
# streamed; request and task transactions last milliseconds, so a minute is a wide margin.
LOOK_BACK_SECONDS = 60.0
# The most seqs a follower remembers above its floor (bounded memory on a very busy organization:
# past this the floor rises early, narrowing the look-back for the oldest ones).
MAX_SEEN = 10_000
# Events read and sent per round; a backlog is sent in rounds of this size.
BATCH = 500
# On connect, the organization's latest events already committed count as seen; one of the slots
# between them that commits later is streamed.
SNAPSHOT = 1_000
# Resuming replays at most this much; further back, the client reloads through the API instead.
RESUME_MAX_EVENTS = 10_000
RESUME_MAX_AGE = timedelta(hours=24)
# What EventSource waits before reconnecting (sent first, as `retry:`).
RETRY_MILLISECONDS = 3_000

_EVENT_ID = re.compile(r"^[a-z]{1,8}_[a-z0-9]{1,32}$")
STREAM_SCOPES: tuple[str, ...] = tuple(sorted(set(READ_SCOPE_BY_FAMILY.values())))


class UnknownLastEventId(InvalidRequest):
    code = "unknown_last_event_id"


class ResumeWindowExceeded(KaanhaError):
    status_code = 410
    code = "resume_window_exceeded"


def require_stream_scope(scopes: Collection[str]) -> None:
    """The stream shows each event family to keys that can read it; a key that can read none gets 403."""
    if not set(scopes) & set(STREAM_SCOPES):
        raise MissingScope(
            "This API key can read none of the event families, so the stream would stay empty; "
            f"create a key with at least one of: {', '.join(STREAM_SCOPES)}"
        )


def visible_to(scopes: Collection[str]) -> Callable[[str], bool]:
    """Whether a key with `scopes` sees an event type: the scope it needs to read that resource, never `ping`."""
    held = frozenset(scopes)
    return lambda event_type: event_type != PING and read_scope(event_type) in held


async def resume_after(session: AsyncSession, *, organization_id: str, last_event_id: str) -> int:
    """The seq to resume after, for the last event a client received.

    An id that is not one of this organization's events is refused (400, the same answer for another
    organization's id). When the events missed since are more than `RESUME_MAX_EVENTS` or the first of
    them is older than `RESUME_MAX_AGE`, resuming is refused with 410: the client reloads through the
    API and reconnects without `Last-Event-ID`, rather than replaying a day of history.
    """
    seq = None
    if _EVENT_ID.match(last_event_id):
        seq = await session.scalar(
            select(Event.seq).where(Event.id == last_event_id, Event.organization_id == organization_id)
        )
    if seq is None:
        raise UnknownLastEventId(
            "Last-Event-ID (or lastEventId) is not an event of this organization: "
            "reconnect without it to stream from now"
        )
    missed = select(Event).where(Event.organization_id == organization_id, Event.seq > seq).order_by(Event.seq)
    first_missed_at = await session.scalar(missed.with_only_columns(Event.created_at).limit(1))
    too_many = await session.scalar(missed.with_only_columns(Event.seq).offset(RESUME_MAX_EVENTS).limit(1))
    if too_many is not None or (first_missed_at is not None and first_missed_at < now() - RESUME_MAX_AGE):
        hours = int(RESUME_MAX_AGE.total_seconds() // 3600)
        raise ResumeWindowExceeded(
            f"Too much happened since Last-Event-ID to replay (the stream resumes up to {RESUME_MAX_EVENTS} "
            f"events from the last {hours} hours): reload through the API and reconnect without Last-Event-ID"
        )
    return seq


@dataclass
class SeenWindow:
    """The tail of one organization's log that a follower has already handled.

    Every seq at or below `floor` is settled and never read again; above it, `seen` holds the seqs
    handled. The floor rises to the highest seq seen `look_back` seconds earlier, so a lower seq
    that commits within that time of a higher one is still found; memory stays under `max_seen`.
    """

    floor: int
    seen: set[int] = field(default_factory=set)
    look_back: float = LOOK_BACK_SECONDS
    max_seen: int = MAX_SEEN
    # The highest seq seen (or the floor), and when each new high was reached, oldest first.
    high: int = field(init=False)
    _marks: deque[tuple[float, int]] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        self.high = max(self.seen, default=self.floor)

    def unseen(self, seqs: Iterable[int]) -> list[int]:
        return sorted(seq for seq in set(seqs) if seq > self.floor and seq not in self.seen)

    def add(self, seqs: Iterable[int], *, at: float) -> None:
        added = [seq for seq in seqs if seq > self.floor]
        self.seen.update(added)
        high = max(added, default=self.high)
        if high > self.high or not self._marks:
            self.high = max(high, self.high)
            self._marks.append((at, self.high))
        self.settle(at=at)

    def settle(self, *, at: float) -> None:
        floor = self.floor
        while self._marks and self._marks[0][0] <= at - self.look_back:
            floor = max(floor, self._marks.popleft()[1])
        if len(self.seen) > self.max_seen:
            floor = max(floor, sorted(self.seen)[-self.max_seen - 1])
        if floor > self.floor:
            self.floor = floor
            self.seen = {seq for seq in self.seen if seq > floor}


@dataclass(eq=False)
class Listener:
    """One open stream: woken by commits in this process (`notify`) or by the server ending it."""

    wake: asyncio.Event
    ended: bool = False


class LiveStreams:
    """An app's open streams, so a server that is shutting down can end them.

    uvicorn waits for every open response before it stops, and a live stream never ends by itself.
    """

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._listeners)

    @contextlib.contextmanager
    def listen(self, organization_id: str) -> Iterator[Listener]:
        listener = Listener(wake=notify.subscribe(organization_id), ended=self.closing)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            notify.unsubscribe(organization_id, listener.wake)

    def end_all(self) -> None:
        """End every open stream (clients reconnect with Last-Event-ID); streams opened after end at once."""
        self.closing = True
        for listener in list(self._listeners):
            listener.ended = True
            listener.wake.set()


def live_streams(app: Any) -> LiveStreams:
    """The registry of `app`'s open streams (a Starlette app), made on first use."""
    streams: LiveStreams | None = getattr(app.state, "event_streams", None)
    if streams is None:
        streams = LiveStreams()
        app.state.event_streams = streams
    return streams


def end_event_streams(app: Any) -> None:
    """Call when the server begins to shut down, before it waits for open responses."""
    live_streams(app).end_all()


@dataclass
class Tail:
    """A reader in place in the log: the events it may see as they commit, and where it started."""

    events: AsyncIterator[Event]
    # When starting from now: the newest event it may see that had already committed. Sent as the
    # stream's first id, so a client that reconnects before any event arrives resumes from there
    # instead of losing what happened while it was away.
    position: str | None


@contextlib.asynccontextmanager
async def follow(
    database: Database,
    *,
    organization_id: str,
    after: int | None,
    visible: Callable[[str], bool],
    streams: LiveStreams,
    poll_seconds: float = POLL_SECONDS,
    look_back_seconds: float = LOOK_BACK_SECONDS,
) -> AsyncIterator[Tail]:
    """Put a reader in place in the organization's log, then give the events it may see as they commit.

    Once entered, the reader is in place: `after` is the seq to resume after (every later event
    comes first, in seq order); None starts from now. Only events whose type passes `visible` come,
    once each, in seq order within a round; one whose transaction committed late comes after the
    higher seqs already given. The events end when the stream is ended (`LiveStreams.end_all`).
    """
    with streams.listen(organization_id) as listener:
        window, position = await _open_window(
            database, organization_id, after=after, visible=visible, look_back=look_back_seconds
        )
        events = _tail(database, organization_id, window, listener, visible=visible, poll_seconds=poll_seconds)
        async with contextlib.aclosing(events):
            yield Tail(events=events, position=position)


async def _tail(
    database: Database,
    organization_id: str,
    window: SeenWindow,
    listener: Listener,
    *,
    visible: Callable[[str], bool],
    poll_seconds: float,
) -> AsyncGenerator[Event, None]:
    while not listener.ended:
        # Cleared before reading: a commit during the read wakes the next round instead of being missed.
        listener.wake.clear()
        try:
            events, more = await _read_unseen(database, organization_id, window)
        except Exception as error:
            if not is_transient(error):
                raise
            logger.warning("event stream: reading the log failed, retrying: %s", error)
            events, more = [], False
        for event in events:
            if visible(event.type):
                yield event
        if more:
            continue
        with anyio.move_on_after(poll_seconds):
            await listener.wake.wait()


async def _open_window(
    database: Database, organization_id: str, *, after: int | None, visible: Callable[[str], bool], look_back: float
) -> tuple[SeenWindow, str | None]:
    # The latest events committed by now (up to `after` when resuming) count as seen, and the slots
    # between them stay open: a transaction still running when the client connected is streamed.
    query = select(Event.seq, Event.id, Event.type).where(Event.organization_id == organization_id)
    if after is not None:
        query = query.where(Event.seq <= after)
    async with database.sessions() as session:
        latest = list(await session.execute(query.order_by(Event.seq.desc()).limit(SNAPSHOT)))
    floor = min(row.seq for row in latest) - 1 if len(latest) == SNAPSHOT else 0
    window = SeenWindow(floor=floor, look_back=look_back)
    window.add((row.seq for row in latest), at=time.monotonic())
    position = None
    if after is None:
        position = next((row.id for row in latest if visible(row.type)), None)
    return window, position


async def _read_unseen(database: Database, organization_id: str, window: SeenWindow) -> tuple[list[Event], bool]:
    """The next events above the floor not seen yet (at most BATCH), and whether more are waiting."""
    async with database.sessions() as session:
        # Seqs only (the index covers them): the look-back re-reads these every poll.
        # Every seen seq is above the floor, so this many rows include BATCH unseen ones when they exist.
        seqs = await session.scalars(
            select(Event.seq)
            .where(Event.organization_id == organization_id, Event.seq > window.floor)
            .order_by(Event.seq)
            .limit(len(window.seen) + BATCH + 1)
        )
        fresh = window.unseen(seqs)
        batch, more = fresh[:BATCH], len(fresh) > BATCH
        events = []
        if batch:
            events = list(
                await session.scalars(
                    select(Event)
                    .where(Event.organization_id == organization_id, Event.seq.in_(batch))
                    .order_by(Event.seq)
                )
            )
    window.add(batch, at=time.monotonic())
    return events, more

"""The live event stream `GET /events/stream`, over real HTTP on loopback, and its follower underneath.

The server runs in-process on a free 127.0.0.1 port (its own event loop and database engine). Events
are emitted on the server's loop, as an API request there would; the tests of `follow()` itself run
on the test loop and also cover rows written by "another process" (no in-process wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, update

from kaanha.app import create_app
from kaanha.config import Settings
from kaanha.database import Database
from kaanha.events import notify
from kaanha.events import stream as event_stream
from kaanha.events.service import body, emit
from kaanha.events.stream import LiveStreams, SeenWindow, end_event_streams, follow, live_streams
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Event
from kaanha.runtime import Runtime
from kaanha.testing.databases import scratch_postgres_database
from kaanha.testing.fake_graph import BackgroundServer
from tests.conftest import API, Tenant, make_tenant
from tests.e2e.test_serve_process import serve_process
from tests.helpers import assert_error

STREAM = f"{API}/events/stream"
# Generous: an event normally arrives within one poll (a second), or at once when woken.
WAIT_SECONDS = 30.0
T = TypeVar("T")


class StreamingServer(BackgroundServer):
    """The app on loopback; stopping it ends open streams first, as `kaanha serve` does."""

    def _before_stop(self) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(end_event_streams, self.app)

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the server's loop (so commits wake its streams as a request's would)."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def emit(self, organization_id: str, type: str = "contact.created", **data: Any) -> Event:
        async def write() -> Event:
            async with self.runtime.database.transaction() as session:
                return await emit(
                    session, organization_id=organization_id, type=type, data={"id": new_id("con"), **data}
                )

        return await self.run(write())


@pytest_asyncio.fixture
async def server(settings: Settings, runtime: Runtime) -> AsyncIterator[StreamingServer]:
    # Its own runtime: the database engine must belong to the server's loop, not the test's.
    app = create_app(settings, runtime=Runtime.from_settings(settings))
    listening = StreamingServer(app)
    async with listening:
        yield listening


@dataclass
class Block:
    """One dispatched SSE block: its fields and comment lines."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"])


class SseReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.opening = Block()

    async def block(self) -> Block:
        return await asyncio.wait_for(self._next_block(), WAIT_SECONDS)

    async def event(self) -> Block:
        """The next block that is an event (comments and `retry:` skipped)."""
        while True:
            block = await self.block()
            if "event" in block.fields:
                return block

    async def events(self, count: int) -> list[Block]:
        return [await self.event() for _ in range(count)]

    async def rest(self) -> list[Block]:
        """Every block until the server ends the stream."""

        async def read() -> list[Block]:
            blocks = []
            with contextlib.suppress(EOFError):
                while True:
                    blocks.append(await self._next_block())
            return blocks

        return await asyncio.wait_for(read(), WAIT_SECONDS)

    async def _next_block(self) -> Block:
        block = Block()
        async for line in self._lines:
            if line == "":
                if block.fields or block.comments:
                    return block
            elif line.startswith(":"):
                block.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                block.fields[name] = value.removeprefix(" ")
        raise EOFError("the server ended the stream")


def loopback_client(server: StreamingServer) -> httpx.AsyncClient:
    # trust_env=False: no proxy from the environment; this traffic stays on loopback.
    return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=httpx.Timeout(WAIT_SECONDS, read=None))


@contextlib.asynccontextmanager
async def open_stream(
    server: StreamingServer, key: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    """A stream that is in place: once `retry:` arrived, every event committed afterwards comes."""
    async with (
        loopback_client(server) as client,
        client.stream(
            "GET", STREAM, headers={"Authorization": f"Bearer {key}", **(headers or {})}, params=params
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        reader = SseReader(response)
        reader.opening = await reader.block()
        while not reader.opening.fields:  # a heartbeat comment may come first when the machine is busy
            reader.opening = await reader.block()
        assert reader.opening.fields["retry"] == str(event_stream.RETRY_MILLISECONDS)
        assert set(reader.opening.fields) <= {"retry", "id"}
        yield reader


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"{what}: not within {WAIT_SECONDS} s")


def assert_is(block: Block, event: Event) -> None:
    assert block.fields["id"] == event.id
    assert block.fields["event"] == event.type
    assert block.data == body(event)


def waiters_of(organization_id: str) -> int:
    return sum(1 for organization, _ in list(notify._stream_waiters) if organization == organization_id)


# --- Over HTTP ---------------------------------------------------------------------------------------------


async def test_events_arrive_live_in_order(server: StreamingServer, tenant: Tenant) -> None:
    before = await server.emit(tenant.organization_id, name="before the stream")
    async with open_stream(server, tenant.key) as stream:
        assert stream.opening.fields["id"] == before.id  # where a reconnect resumes before any event
        emitted = [
            await server.emit(tenant.organization_id, "contact.created", name="Asha"),
            await server.emit(tenant.organization_id, "contact.updated", name="Asha K"),
            await server.emit(tenant.organization_id, "message.received", text="Hi"),
        ]
        received = await stream.events(3)
    for block, event in zip(received, emitted, strict=True):
        assert_is(block, event)
    assert before.id not in {block.fields["id"] for block in received}
    assert received[0].data["timestamp"].endswith("Z")


async def test_a_resume_sends_exactly_the_missed_events_in_order_then_live_ones(
    server: StreamingServer, tenant: Tenant
) -> None:
    async with open_stream(server, tenant.key) as stream:
        seen = [await server.emit(tenant.organization_id, name=f"seen {n}") for n in range(2)]
        assert [block.fields["id"] for block in await stream.events(2)] == [event.id for event in seen]
    missed = [await server.emit(tenant.organization_id, "contact.updated", name=f"missed {n}") for n in range(3)]

    async with open_stream(server, tenant.key, headers={"Last-Event-ID": seen[-1].id}) as stream:
        replayed = await stream.events(3)
        live = await server.emit(tenant.organization_id, "contact.deleted")
        # The next event is the live one: nothing of the replay comes twice.
        after = await stream.event()
    for block, event in zip(replayed, missed, strict=True):
        assert_is(block, event)
    assert_is(after, live)


async def test_a_resume_by_query_parameter_and_the_header_winning(server: StreamingServer, tenant: Tenant) -> None:
    events = [await server.emit(tenant.organization_id, name=f"n{n}") for n in range(3)]
    async with open_stream(server, tenant.key, params={"lastEventId": events[0].id}) as stream:
        assert [block.fields["id"] for block in await stream.events(2)] == [events[1].id, events[2].id]
    # EventSource keeps its first URL and sends the newest id as a header when it reconnects.
    async with open_stream(
        server, tenant.key, params={"lastEventId": events[0].id}, headers={"Last-Event-ID": events[1].id}
    ) as stream:
        assert (await stream.event()).fields["id"] == events[2].id


async def test_a_reconnect_before_any_event_resumes_from_the_opening_id(
    server: StreamingServer, tenant: Tenant
) -> None:
    await server.emit(tenant.organization_id, name="before")
    async with open_stream(server, tenant.key) as stream:
        position = stream.opening.fields["id"]
    # What EventSource does: it kept the opening id, and sends it when it reconnects.
    meanwhile = await server.emit(tenant.organization_id, name="while away")
    async with open_stream(server, tenant.key, headers={"Last-Event-ID": position}) as stream:
        assert "id" not in stream.opening.fields
        assert_is(await stream.event(), meanwhile)


async def test_a_key_sees_only_the_families_its_scopes_can_read(server: StreamingServer, runtime: Runtime) -> None:
    reader = await make_tenant(runtime, "Contacts only", scopes=["contacts:read"])
    await server.emit(reader.organization_id, "message.received", text="before")
    async with open_stream(server, reader.key) as stream:
        assert "id" not in stream.opening.fields  # not even the id of an event it can't see
        await server.emit(reader.organization_id, "message.received", text="hidden")
        await server.emit(reader.organization_id, "conversation.created")
        await server.emit(reader.organization_id, "ping")
        shown = await server.emit(reader.organization_id, "contact.created", name="shown")
        # The hidden ones committed first; the stream skipped them.
        assert_is(await stream.event(), shown)


async def test_a_key_that_can_read_no_event_family_is_refused(server: StreamingServer, runtime: Runtime) -> None:
    media_only = await make_tenant(runtime, "Media only", scopes=["media:read", "messages:send"])
    async with loopback_client(server) as client:
        response = await client.get(STREAM, headers={"Authorization": f"Bearer {media_only.key}"})
    body = assert_error(response, 403, "insufficient_scope")
    assert "messages:read" in body["error"]


async def test_another_organizations_events_never_appear(
    server: StreamingServer, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with open_stream(server, tenant.key) as stream:
        await server.emit(other_tenant.organization_id, "contact.created", name="Globex's")
        await server.emit(other_tenant.organization_id, "message.received", text="Globex's")
        ours = await server.emit(tenant.organization_id, "contact.created", name="ours")
        assert_is(await stream.event(), ours)


async def test_without_a_valid_key_the_stream_answers_401_json(server: StreamingServer) -> None:
    async with loopback_client(server) as client:
        missing = await client.get(STREAM)
        unknown = await client.get(STREAM, headers={"Authorization": "Bearer kh_abcdefghij_" + "x" * 40})
    assert_error(missing, 401, "unauthorized")
    assert_error(unknown, 401, "unauthorized")


async def test_a_last_event_id_that_is_not_ours_answers_400(
    server: StreamingServer, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await server.emit(other_tenant.organization_id)
    async with loopback_client(server) as client:
        answers = [
            await client.get(STREAM, headers={**tenant.headers, "Last-Event-ID": "evt_doesnotexist"}),
            await client.get(STREAM, headers={**tenant.headers, "Last-Event-ID": theirs.id}),
            await client.get(STREAM, headers=tenant.headers, params={"lastEventId": "not an id\x00"}),
        ]
    bodies = [assert_error(answer, 400, "unknown_last_event_id") for answer in answers]
    # Another organization's event is indistinguishable from one that does not exist.
    assert bodies[0] == bodies[1]


async def test_a_resume_beyond_the_window_answers_410(
    server: StreamingServer, runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await server.emit(tenant.organization_id)
    stale = await server.emit(tenant.organization_id)
    async with runtime.database.transaction() as session:
        await session.execute(update(Event).where(Event.id == stale.id).values(created_at=now() - timedelta(hours=25)))
    async with loopback_client(server) as client:
        too_old = await client.get(STREAM, headers={**tenant.headers, "Last-Event-ID": first.id})
        monkeypatch.setattr(event_stream, "RESUME_MAX_EVENTS", 2)
        later = [await server.emit(tenant.organization_id) for _ in range(3)]
        too_many = await client.get(STREAM, headers={**tenant.headers, "Last-Event-ID": stale.id})
    assert_error(too_old, 410, "resume_window_exceeded")
    assert_error(too_many, 410, "resume_window_exceeded")
    async with open_stream(server, tenant.key, headers={"Last-Event-ID": later[0].id}) as stream:
        assert [block.fields["id"] for block in await stream.events(2)] == [later[1].id, later[2].id]


async def test_an_idle_stream_sends_heartbeat_comments(
    server: StreamingServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.05)
    async with open_stream(server, tenant.key) as stream:
        heartbeat = await stream.block()
    assert heartbeat.fields == {}
    assert heartbeat.comments == ["ping"]


async def test_an_idle_stream_holds_no_database_connection_and_disconnecting_frees_it(
    server: StreamingServer, tenant: Tenant
) -> None:
    streams = live_streams(server.app)
    pool = server.runtime.database.engine.pool
    async with open_stream(server, tenant.key):
        assert len(streams) == 1
        assert waiters_of(tenant.organization_id) == 1
        # Between polls nothing is checked out: the stream does not sit on a connection or a transaction.
        await until(lambda: pool.checkedout() == 0, "the idle stream still holds a database connection")  # type: ignore[attr-defined]
    await until(lambda: len(streams) == 0, "the stream is still registered after the client left")
    await until(lambda: waiters_of(tenant.organization_id) == 0, "the stream still listens for commits")


async def test_stopping_the_server_ends_open_streams_cleanly(server: StreamingServer, tenant: Tenant) -> None:
    async with open_stream(server, tenant.key) as stream:
        await asyncio.to_thread(server.stop)
        # A clean end of the response (no reset): EventSource reconnects with Last-Event-ID.
        assert [block.comments for block in await stream.rest()] in ([], [["ping"]])
    assert server._thread is not None
    assert not server._thread.is_alive()


# --- `kaanha serve` ----------------------------------------------------------------------------------------


@pytest.fixture
def serve_database_url(tmp_path: Path) -> Iterator[str]:
    requested = os.environ.get("KAANHA_TEST_DATABASE_URL")
    if not requested:
        yield f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
        return
    with scratch_postgres_database(requested, prefix="kaanha_stream") as url:
        yield url


def test_kaanha_serve_stops_on_sigterm_with_a_stream_open(tmp_path: Path, serve_database_url: str) -> None:
    with serve_process(tmp_path, serve_database_url) as server:
        client = httpx.Client(
            base_url=server.base_url, headers=server.headers, trust_env=False, timeout=httpx.Timeout(60)
        )
        with client, client.stream("GET", STREAM) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == f"retry: {event_stream.RETRY_MILLISECONDS}"
            server.process.send_signal(signal.SIGTERM)
            # uvicorn waits for open responses; the server ends the stream, so this returns.
            rest = list(lines)
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()
    assert all(line in ("", ": ping") for line in rest)


# --- The follower underneath -------------------------------------------------------------------------------


async def _insert(database: Database, event: Event) -> Event:
    """A row written as another process would: committed, but nothing in this process is woken."""
    async with database.transaction() as session:
        session.add(event)
    return event


def everything(event_type: str) -> bool:
    return True


def _event(organization_id: str, type: str = "contact.updated", seq: int | None = None) -> Event:
    return Event(
        seq=seq, id=new_id("evt"), organization_id=organization_id, type=type, data={"id": "con_x"}, created_at=now()
    )


async def test_a_lower_seq_committed_later_is_still_streamed(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    database = runtime.database
    async with follow(
        database,
        organization_id=tenant.organization_id,
        after=None,
        visible=everything,
        streams=LiveStreams(),
        poll_seconds=0.02,
    ) as tail:
        events = tail.events
        # On PostgreSQL a transaction takes its seq at insert and may commit after a later one. Made
        # here on either engine: a slot below the next seq (another organization's row, then freed)...
        slot = (await _insert(database, _event(other_tenant.organization_id))).seq
        higher = await _insert(database, _event(tenant.organization_id))
        assert (await anext(events)).id == higher.id
        # ...filled after the higher one was streamed.
        async with database.transaction() as session:
            await session.execute(delete(Event).where(Event.seq == slot))
        lower = await _insert(database, _event(tenant.organization_id, seq=slot))
        assert lower.seq < higher.seq
        assert (await asyncio.wait_for(anext(events), WAIT_SECONDS)).id == lower.id
        # Once each: the next is new, not the late one again.
        newest = await _insert(database, _event(tenant.organization_id))
        assert (await asyncio.wait_for(anext(events), WAIT_SECONDS)).id == newest.id


async def test_a_commit_in_this_process_wakes_the_follower(runtime: Runtime, tenant: Tenant) -> None:
    # Polling once an hour: only the wake-up after the commit can deliver the event.
    async with follow(
        runtime.database,
        organization_id=tenant.organization_id,
        after=None,
        visible=everything,
        streams=LiveStreams(),
        poll_seconds=3600,
    ) as tail:
        events = tail.events
        async with runtime.database.transaction() as session:
            emitted = await emit(session, organization_id=tenant.organization_id, type="contact.created", data={})
        assert (await asyncio.wait_for(anext(events), WAIT_SECONDS)).id == emitted.id


async def test_ending_the_streams_ends_the_follower(runtime: Runtime, tenant: Tenant) -> None:
    streams = LiveStreams()
    async with follow(
        runtime.database,
        organization_id=tenant.organization_id,
        after=None,
        visible=everything,
        streams=streams,
        poll_seconds=3600,
    ) as tail:
        events = tail.events
        assert len(streams) == 1
        streams.end_all()
        assert [event async for event in events] == []
    assert len(streams) == 0
    assert waiters_of(tenant.organization_id) == 0


def test_the_window_finds_late_seqs_within_the_look_back_and_stays_bounded() -> None:
    window = SeenWindow(floor=0, look_back=60, max_seen=5)
    window.add([1, 2, 4], at=0)
    assert window.unseen([1, 2, 3, 4, 5]) == [3, 5]
    window.add([3, 5], at=30)
    # 60 s after 4 was the highest, every seq up to 4 is settled; 5 is still remembered.
    window.settle(at=60)
    assert (window.floor, window.seen) == (4, {5})
    assert window.unseen([3, 5, 6]) == [6]
    window.add(range(6, 20), at=61)
    assert len(window.seen) == 5
    assert window.floor == 14
    assert window.unseen(range(10, 21)) == [20]

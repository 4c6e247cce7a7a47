"""HTTP endpoint for the live event stream (Server-Sent Events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from kaanha.auth.principal import Principal
from kaanha.events import stream
from kaanha.events.service import body
from kaanha.http.dependencies import PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/events", tags=["Events"])
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


async def stream_reader(principal: PrincipalDep) -> Principal:
    stream.require_stream_scope(principal.scopes)
    return principal


StreamReader = Annotated[Principal, Depends(stream_reader)]


async def resume_point(
    principal: StreamReader,
    session: SessionDep,
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=100,
            description="The id of the last event received: every later event is sent first. "
            "EventSource sends it by itself when it reconnects.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            max_length=100,
            description="The same, for clients that can't set headers; the header wins when both are sent "
            "(EventSource keeps the first URL and sends the header on reconnects).",
        ),
    ] = None,
) -> int | None:
    wanted = (last_event_id_header or "").strip() or (last_event_id or "").strip()
    if not wanted:
        return None
    return await stream.resume_after(session, organization_id=principal.organization_id, last_event_id=wanted)


_DESCRIPTION = f"""
Server-Sent Events: the organization's events as they happen, the same `{{id, type, timestamp, data}}`
bodies webhooks receive. Each arrives as

```
id: evt_...
event: contact.created
data: {{"id":"evt_...","type":"contact.created","timestamp":"2026-11-24T10:15:00Z","data":{{...}}}}
```

A key sees the event families its scopes can read through the API (`message.*` with `messages:read`,
`contact.*` with `contacts:read`, `conversation.*` with `conversations:read`, ...); a key that can read
none of them answers 403. `ping` events are never streamed.

The stream opens with `retry: {stream.RETRY_MILLISECONDS}` once it is in place (every event committed after
it arrives) and, when starting from now, the `id:` of the newest event the key may see (no event is
dispatched): a client that reconnects before any event arrived resumes from there. A `: ping` comment
is sent after 15 seconds without events so proxies keep the connection open.

With `Last-Event-ID` (or `?lastEventId=`) every event after that one is sent first, in order, then live
ones; without it the stream starts from now.
Resuming covers up to {stream.RESUME_MAX_EVENTS} missed events from the last
{int(stream.RESUME_MAX_AGE.total_seconds() // 3600)} hours: further back it answers 410, and the client
reloads through the API and reconnects without `Last-Event-ID`. Delivery is at least once: dedupe by
`id` (an event whose transaction committed late can arrive after newer ones, and a resume from it
sends those again).
"""


@router.get(
    "/stream",
    summary="Stream events live",
    description=_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        400: {"description": "Last-Event-ID is not an event of this organization", "content": _ERROR_CONTENT},
        410: {
            "description": "Too many events since Last-Event-ID to replay: reload and reconnect without it",
            "content": _ERROR_CONTENT,
        },
    },
)
async def stream_events(
    request: Request, principal: StreamReader, after: Annotated[int | None, Depends(resume_point)], runtime: RuntimeDep
) -> AsyncIterator[ServerSentEvent]:
    following = stream.follow(
        runtime.database,
        organization_id=principal.organization_id,
        after=after,
        visible=stream.visible_to(principal.scopes),
        streams=stream.live_streams(request.app),
    )
    async with following as tail:
        # Sent once the reader is in place: a client that has it misses nothing committed afterwards.
        # The id (no data, so no event is dispatched) is where EventSource resumes if it reconnects first.
        yield ServerSentEvent(retry=stream.RETRY_MILLISECONDS, id=tail.position)
        async for event in tail.events:
            yield ServerSentEvent(id=event.id, event=event.type, raw_data=orjson.dumps(body(event)).decode())

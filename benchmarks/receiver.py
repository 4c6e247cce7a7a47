"""A customer's webhook receiver for the webhooks scenario: `python -m benchmarks.receiver --port N`.

A bare ASGI app (no framework) under uvicorn with uvloop and httptools on 127.0.0.1, kept lean so that
it is never what limits the deliveries it takes. Every POST is read to the end and answered 200 at once,
except on `/hang`, answered only after `--hang-seconds` (10), unless the client hangs up first (Kaanha
gives up after 10 s): such a request is no longer in flight, and never answered.

`GET /stats` returns what arrived, per path and for all `/ok/...` paths together (`/ok/*`): `{path:
{arrivals, answered, distinctIds, inFlight, maxInFlight, first, last, longestGap}}`, where `distinctIds`
counts `webhook-id` headers (a delivery sent twice arrives twice with one id), `first` and `last` are
Unix times of the first and last arrival and `longestGap` the longest wait between two arrivals.
Nothing else is kept: no bodies, no signature checks.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HANG_PATH = "/hang"
OK_PREFIX = "/ok/"
OK_ALL = "/ok/*"
_OK_BODY = b"ok"
_OK_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_OK_END = {"type": "http.response.body", "body": _OK_BODY}


class PathStats:
    __slots__ = ("answered", "arrivals", "first", "ids", "in_flight", "last", "longest_gap", "max_in_flight")

    def __init__(self) -> None:
        self.arrivals = 0
        self.answered = 0
        self.ids: set[bytes] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.first = 0.0
        self.last = 0.0
        self.longest_gap = 0.0

    def arrive(self, moment: float, webhook_id: bytes | None) -> None:
        if self.arrivals:
            self.longest_gap = max(self.longest_gap, moment - self.last)
        else:
            self.first = moment
        self.last = moment
        self.arrivals += 1
        if webhook_id is not None:
            self.ids.add(webhook_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, answered: bool) -> None:
        self.in_flight -= 1
        self.answered += answered

    def to_json(self) -> dict[str, Any]:
        return {
            "arrivals": self.arrivals,
            "answered": self.answered,
            "distinctIds": len(self.ids),
            "inFlight": self.in_flight,
            "maxInFlight": self.max_in_flight,
            "first": self.first,
            "last": self.last,
            "longestGap": self.longest_gap,
        }


class Receiver:
    def __init__(self, hang_seconds: float) -> None:
        self.hang_seconds = hang_seconds
        self.paths: dict[str, PathStats] = {}

    def _stats(self, path: str) -> PathStats:
        stats = self.paths.get(path)
        if stats is None:
            stats = self.paths[path] = PathStats()
        return stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if scope["method"] == "GET" and path == "/stats":
            body = orjson.dumps({name: stats.to_json() for name, stats in self.paths.items()})
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        moment = time.time()
        webhook_id = next((value for name, value in scope["headers"] if name == b"webhook-id"), None)
        groups = [self._stats(path)]
        if path.startswith(OK_PREFIX):
            groups.append(self._stats(OK_ALL))
        for stats in groups:
            stats.arrive(moment, webhook_id)
        answered = False
        try:
            if path != HANG_PATH or await _client_waited(receive, self.hang_seconds):
                await send(_OK_START)
                await send(_OK_END)
                answered = True
        finally:
            for stats in groups:
                stats.leave(answered)


async def _client_waited(receive: Receive, seconds: float) -> bool:
    """Wait `seconds`, or until the client hangs up (False): a request it gave up on is no longer in flight."""
    disconnect = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({disconnect}, timeout=seconds)
    if done:
        return False
    disconnect.cancel()
    return True


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hang-seconds", type=float, default=10.0)
    options = parser.parse_args(argv)
    uvicorn.run(
        Receiver(options.hang_seconds),
        host="127.0.0.1",
        port=options.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        # Kaanha keeps connections open between deliveries; don't close them under it while it is busy.
        timeout_keep_alive=30,
        # The hanging requests are still asleep at the end; don't wait for them when told to stop.
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()

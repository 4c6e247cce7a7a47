"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

Run as its own process (`python -m benchmarks.loadgen --spec '<json>'`) so that it never shares the
server's time slice: N connections each send one request, read the whole response, and send the next,
for `warmup + duration` seconds. Throughput counts the 200 answers completed inside the `duration` window;
latency is that of the requests started inside it, however late their answer (a stalled request counts).
Any status but 200 stops the run and the process exits 1, saying what came back; except that with
`retry_errors` a 5xx answer is counted (`errors`, `firstError`) and the same bytes are sent again after
a short pause, as Meta retries a webhook its receiver failed.

A GET repeats one fixed request. A POST takes a new body for every request from the generator its
`bodies` names (benchmarks/bodies.py: signed Meta webhooks, Graph API sends), made in this process.

The result is one JSON object on stdout: `{requests, seconds, rps, p50Ms, p90Ms, p99Ms, maxMs,
over1sShare, connections, itemsPerRequest, itemsPerSecond, sent, sentItems, startedAt, finishedAt}`, where
`sent` counts every request answered (warm-up and the last in flight included): what the server has
acknowledged in all; `startedAt` and `finishedAt` are Unix times of the first request and the last answer.
Latency figures are those of the 200 answers. With `max_requests`, no request is made past that many,
and the measured window (`seconds`) ends when the last one was made, if that comes before its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.bodies import Bodies, make_bodies

RETRY_PAUSE_SECONDS = 0.1


class LoadError(Exception):
    """The server answered something other than 200, or broke the connection."""


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 16
    duration: float = 5.0
    warmup: float = 1.0
    method: str = "GET"
    # For a POST: the body generator and its options, {"kind": "meta-webhook" | "graph-send", ...}.
    bodies: dict[str, Any] | None = None
    retry_errors: bool = False
    # Stop issuing requests after this many (retries aside); the measured window then ends there.
    max_requests: int | None = None

    def request_bytes(self, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in {**self.headers, **(headers or {})}.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if body is None else head + body

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> LoadSpec:
        return cls(**json.loads(text))


@dataclass
class _Window:
    measure_from: float
    stop_at: float
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    completed: int = 0
    issued: int = 0
    errors: int = 0
    first_error: str | None = None


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (lower case, with its colon) in a raw response head."""
    lowered = head.lower()
    at = lowered.find(b"\r\n" + name)
    if at < 0:
        return None
    start = at + 2 + len(name)
    end = lowered.find(b"\r\n", start)
    return head[start:end].strip()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    length = _header(head, b"content-length:")
    if length is not None:
        return await reader.readexactly(int(length))
    encoding = _header(head, b"transfer-encoding:")
    if encoding is not None and encoding.lower() == b"chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
    raise LoadError("response has neither Content-Length nor chunked encoding")


async def _connection(spec: LoadSpec, fixed: bytes | None, bodies: Bodies | None, window: _Window) -> None:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    clock = time.perf_counter
    latencies = window.latencies
    retry: bytes | None = None
    try:
        while True:
            if retry is not None:
                request = retry
            elif spec.max_requests is not None and window.issued >= spec.max_requests:
                window.stop_at = min(window.stop_at, clock())
                return
            elif bodies is not None:
                request = spec.request_bytes(*bodies.next())
            else:
                assert fixed is not None
                request = fixed
            started = clock()
            if started >= window.stop_at and retry is None:
                return
            if retry is None:
                window.issued += 1
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await _read_body(reader, head)
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                raise LoadError(f"connection broken by the server: {error!r}") from None
            finished = clock()
            status = int(head[9:12])
            retry = None
            if status != 200:
                excerpt = f"{spec.method} {spec.path} answered {status}: {body[:300].decode('utf-8', 'replace')}"
                if not (spec.retry_errors and status >= 500):
                    raise LoadError(excerpt)
                window.errors += 1
                window.first_error = window.first_error or excerpt
                retry = request
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            else:
                window.sent += 1
                if window.measure_from <= finished <= window.stop_at:
                    window.completed += 1
                if window.measure_from <= started < window.stop_at:
                    latencies.append(finished - started)
            # uvicorn closes the connection after an unhandled error, even when it sent a 500 first.
            if retry is not None or (_header(head, b"connection:") or b"").lower() == b"close":
                writer.close()
                reader, writer = await asyncio.open_connection(spec.host, spec.port)
    finally:
        writer.close()


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    bodies = make_bodies(spec.bodies) if spec.bodies is not None else None
    fixed = spec.request_bytes() if bodies is None else None
    started_at = time.time()
    start = time.perf_counter()
    window = _Window(measure_from=start + spec.warmup, stop_at=start + spec.warmup + spec.duration)
    tasks = [asyncio.create_task(_connection(spec, fixed, bodies, window)) for _ in range(spec.connections)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    seconds = window.stop_at - window.measure_from
    if seconds <= 0:
        raise LoadError(f"all {spec.max_requests} requests were made during the warm-up; raise max_requests")
    ordered = sorted(window.latencies)
    items = bodies.items if bodies is not None else 1
    millis = 1000.0
    return {
        "requests": window.completed,
        "seconds": seconds,
        "rps": window.completed / seconds,
        "p50Ms": _percentile(ordered, 0.50) * millis,
        "p90Ms": _percentile(ordered, 0.90) * millis,
        "p99Ms": _percentile(ordered, 0.99) * millis,
        "maxMs": (ordered[-1] if ordered else 0.0) * millis,
        "over1sShare": sum(1 for latency in ordered if latency > 1.0) / len(ordered) if ordered else 0.0,
        "connections": spec.connections,
        "itemsPerRequest": items,
        "itemsPerSecond": window.completed * items / seconds,
        "sent": window.sent,
        "sentItems": window.sent * items,
        "errors": window.errors,
        "firstError": window.first_error,
        "startedAt": started_at,
        "finishedAt": started_at + (time.perf_counter() - start),
    }


def _run(spec: LoadSpec) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(run_load(spec))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_load(spec))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spec", required=True, help="LoadSpec as JSON")
    args = parser.parse_args(argv)
    try:
        result = _run(LoadSpec.from_json(args.spec))
    except (LoadError, OSError) as error:
        print(f"load generator: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

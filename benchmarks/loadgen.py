"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

Run as its own process (`python -m benchmarks.loadgen --spec '<json>'`) so that it never shares the
server's time slice: N connections each send one request, read the whole response, and send the next,
for `warmup + duration` seconds. Only responses completed inside the `duration` window are counted.
Any status but 200 stops the run and the process exits 1, saying what came back. The result is one
JSON object on stdout: `{requests, seconds, rps, p50Ms, p90Ms, p99Ms, maxMs, connections}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any


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

    def request_bytes(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

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


async def _connection(spec: LoadSpec, request: bytes, window: _Window) -> None:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    clock = time.perf_counter
    latencies = window.latencies
    try:
        while True:
            started = clock()
            if started >= window.stop_at:
                return
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await _read_body(reader, head)
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                raise LoadError(f"connection broken by the server: {error!r}") from None
            finished = clock()
            status = int(head[9:12])
            if status != 200:
                excerpt = body[:300].decode("utf-8", "replace")
                raise LoadError(f"GET {spec.path} answered {status}: {excerpt}")
            if window.measure_from <= finished <= window.stop_at:
                latencies.append(finished - started)
            if (_header(head, b"connection:") or b"").lower() == b"close":
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
    start = time.perf_counter()
    window = _Window(measure_from=start + spec.warmup, stop_at=start + spec.warmup + spec.duration)
    request = spec.request_bytes()
    tasks = [asyncio.create_task(_connection(spec, request, window)) for _ in range(spec.connections)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ordered = sorted(window.latencies)
    millis = 1000.0
    return {
        "requests": len(ordered),
        "seconds": spec.duration,
        "rps": len(ordered) / spec.duration,
        "p50Ms": _percentile(ordered, 0.50) * millis,
        "p90Ms": _percentile(ordered, 0.90) * millis,
        "p99Ms": _percentile(ordered, 0.99) * millis,
        "maxMs": (ordered[-1] if ordered else 0.0) * millis,
        "connections": spec.connections,
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

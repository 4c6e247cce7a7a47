"""Serving an ASGI app over real HTTP on loopback from a background thread with its own event loop.

`BackgroundServer` is generic (tests also use it for a webhook receiver); `FakeGraphServer` serves a
`FakeGraphAPI`, whose background work then runs on that thread's loop. The socket is bound before the thread
starts, so port 0 gives a free port that is known at once and no other process can take meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from kaanha.testing.fake_graph.fake import FakeGraphAPI

START_TIMEOUT_SECONDS = 10.0


class BackgroundServer:
    """uvicorn (loop="asyncio") in a daemon thread; use as a context manager, sync or async."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, loop="asyncio", lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Start serving and return once requests are answered (raises if start-up failed)."""
        if self._thread is not None:
            raise RuntimeError("this server has already been started")
        self._thread = threading.Thread(target=self._run, name=f"asgi-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} failed to start") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server on {self.url} did not start within {START_TIMEOUT_SECONDS} s")
            time.sleep(0.002)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread; safe to call twice."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._before_stop()
        self._server.should_exit = True
        thread.join(timeout=START_TIMEOUT_SECONDS)

    def _before_stop(self) -> None:
        """Hook for subclasses, called from the stopping thread before uvicorn is told to exit."""

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # surfaced by start()
            self._failure = error
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._socket.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> BackgroundServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class FakeGraphServer(BackgroundServer):
    """A `FakeGraphAPI` over real HTTP; `url` is the Graph base URL (the version is a path segment)."""

    def __init__(self, fake: FakeGraphAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(fake.app, host=host, port=port)
        self.fake = fake

    def _before_stop(self) -> None:
        """Release answers held back by injected timeouts, so shutdown does not wait for them."""
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.fake._begin_close)

    def __enter__(self) -> FakeGraphServer:
        self.start()
        return self

    async def __aenter__(self) -> FakeGraphServer:
        await asyncio.to_thread(self.start)
        return self


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when `host` is an IPv6 literal), made before uvicorn starts."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it, Nagle and delayed ACKs add ~40 ms to every request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock

"""Posting webhooks to the callback: loopback-only, signed, retried, batched, and counted until done.

Every POST carries `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(exact body bytes, app secret)>`, as Meta's.
Status webhooks wait in a heap keyed by their due time; one task pops what is due every batch interval, and a
fixed pool of workers posts it in batches of up to `batch_size` statuses, so a 20,000-send benchmark costs
O(log n) per status and never one task per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import ipaddress
import itertools
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from kaanha.testing.fake_graph.models import FakeStats, PhoneNumber, WebhookDelivery
from kaanha.testing.fake_graph.payloads import statuses_envelope

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4)
MAX_POSTS_IN_FLIGHT = 8  # measured: more makes httpx slower, not faster
POST_TIMEOUT_SECONDS = 5.0


def check_loopback_url(url: str | None) -> str | None:
    """Our rule: tests and fakes send traffic to loopback only, so any other callback host is refused."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in {"http", "https"} or not host:
        raise ValueError(f"callback_url must be an http(s) URL, not {url!r}")
    if host == "localhost":
        return url
    refusal = f"callback_url host {host!r} is not a loopback address (127.0.0.0/8, ::1, localhost)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(refusal) from None
    if not address.is_loopback:
        raise ValueError(refusal)
    return url


def signature(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value of `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPoster:
    """Signs and posts payloads with retries, records every attempt, and counts work not yet delivered.

    `pending` is what `wait_for_webhooks_idle` watches: scheduled work calls `hold()` when it is planned and
    `release()` once its POST succeeded or ran out of retries. Only the fake's event loop touches it.
    """

    def __init__(self, app_secret: str, callback_url: str | None, stats: FakeStats) -> None:
        self.app_secret = app_secret
        self._callback_url = check_loopback_url(callback_url)
        self.stats = stats
        self.deliveries: list[WebhookDelivery] = []
        self.pending = 0
        self._client: httpx.AsyncClient | None = None

    @property
    def callback_url(self) -> str | None:
        return self._callback_url

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        self._callback_url = check_loopback_url(url)

    def hold(self, count: int = 1) -> None:
        self.pending += count

    def release(self, count: int = 1) -> None:
        self.pending -= count

    def start(self) -> None:
        """One shared client for all POSTs; `trust_env=False` so no proxy setting can send it off the machine."""
        self._client = httpx.AsyncClient(timeout=POST_TIMEOUT_SECONDS, trust_env=False, follow_redirects=False)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, payload: dict[str, Any]) -> bool:
        """POST until a 2xx answer, retrying a non-2xx answer or a connection error with short backoff."""
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature(body, self.app_secret)}
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            if self._callback_url is None or self._client is None:
                return False
            outcome = await self._attempt(self._callback_url, body, headers)
            self.deliveries.append(WebhookDelivery(outcome, payload))
            self.stats.webhook_posts += 1
            if isinstance(outcome, int) and 200 <= outcome < 300:
                return True
            self.stats.webhook_failures += 1
        return False

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> int | str:
        assert self._client is not None
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"
        return response.status_code


Batch = list[tuple[PhoneNumber, dict[str, Any]]]


class StatusQueue:
    """Status webhooks due at a monotonic time, posted in batches every `batch_interval` seconds.

    A flush moves the due statuses, in due order, into `_ready` as batches; `MAX_POSTS_IN_FLIGHT` workers post
    them. A worker takes the first batch none of whose messages is being posted or waits in an earlier batch,
    so the statuses of one message are posted exactly in due order (shuffled only on purpose), while
    different messages go out concurrently. No task per batch: thousands of waiting tasks would make
    asyncio's semaphore quadratic.
    """

    def __init__(self, poster: WebhookPoster, *, batch_size: int, batch_interval: float) -> None:
        if batch_size < 1 or batch_interval < 0:
            raise ValueError("webhook_batch_size must be >= 1 and webhook_batch_interval_seconds >= 0")
        self.poster = poster
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self._heap: list[tuple[float, int, PhoneNumber, dict[str, Any]]] = []
        self._order = itertools.count()
        self._ready: deque[Batch] = deque()
        self._posting: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._work: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def push(self, due: float, phone: PhoneNumber, item: dict[str, Any]) -> None:
        """Schedule one status (event loop only); wakes the runner only when it becomes the earliest."""
        order = next(self._order)
        heapq.heappush(self._heap, (due, order, phone, item))
        self.poster.hold()
        if self._wake is not None and self._heap[0][1] == order:
            self._wake.set()

    def start(self) -> None:
        """Start on the running loop; asyncio primitives are made here because they bind to their loop."""
        self._wake, self._work = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="fake-graph-statuses")]
        self._tasks += [loop.create_task(self._worker()) for _ in range(MAX_POSTS_IN_FLIGHT)]

    async def stop(self) -> None:
        """Cancel the runner and the workers; what is still queued stays for a later start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._posting.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        assert self._work is not None
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._heap[0][0] - time.monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            self._flush(time.monotonic())
            self._work.set()
            await asyncio.sleep(self.batch_interval)

    def _flush(self, now: float) -> None:
        due: Batch = []
        while self._heap and self._heap[0][0] <= now:
            _, _, phone, item = heapq.heappop(self._heap)
            due.append((phone, item))
        for start in range(0, len(due), self.batch_size):
            self._ready.append(due[start : start + self.batch_size])

    def _claim(self) -> Batch | None:
        """The first ready batch whose messages are neither being posted nor waiting in an earlier batch."""
        ahead: set[str] = set()
        for index, batch in enumerate(self._ready):
            wamids = {item["id"] for _, item in batch}
            if wamids.isdisjoint(self._posting) and wamids.isdisjoint(ahead):
                del self._ready[index]
                self._posting |= wamids
                return batch
            ahead |= wamids
        return None

    async def _worker(self) -> None:
        assert self._work is not None
        while True:
            batch = self._claim()
            if batch is None:
                self._work.clear()
                await self._work.wait()
                continue
            try:
                await self.poster.deliver(statuses_envelope(batch))
            finally:
                self._posting.difference_update(item["id"] for _, item in batch)
                self.poster.release(len(batch))
                self._work.set()

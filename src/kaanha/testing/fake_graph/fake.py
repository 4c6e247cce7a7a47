"""`FakeGraphAPI`: the state and behaviour of the fake Graph API, independent of HTTP (see routes.py).

Thread model: the fake belongs to one event loop (the FakeGraphServer's, or the loop of the first request when
its ASGI app is driven in-process). Handlers and background work (status webhooks, template review) run there.
Test-thread helpers only make single dict/list/deque operations, which the GIL keeps atomic, or take `_lock`
for compound updates; coroutines that must run on the fake's loop are handed over with
`run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from typing import Any, TypeVar

from kaanha.testing.fake_graph import templates, validation
from kaanha.testing.fake_graph.errors import GraphError, status_error, unknown_object
from kaanha.testing.fake_graph.limits import PairLimiter, ThroughputLimiter
from kaanha.testing.fake_graph.media import check_upload
from kaanha.testing.fake_graph.models import (
    SLOW,
    TIMEOUT,
    FakeStats,
    MediaItem,
    PhoneNumber,
    SentMessage,
    Template,
    WebhookDelivery,
)
from kaanha.testing.fake_graph.payloads import WamidFactory, inbound_text, status_item, template_status_update
from kaanha.testing.fake_graph.routes import build_app
from kaanha.testing.fake_graph.webhooks import StatusQueue, WebhookPoster

RATES = (
    "failed_status_rate",
    "duplicate_status_rate",
    "reorder_status_rate",
    "error_rate",
    "timeout_rate",
    "slow_rate",
)
DURATIONS = ("timeout_seconds", "slow_seconds", "status_delay_seconds", "template_review_seconds")
T = TypeVar("T")


class FakeGraphAPI:
    """A faithful stand-in for Meta's WhatsApp Cloud API (Graph), for tests, benchmarks and demos.

    Typical use::

        fake = FakeGraphAPI(access_token="t", app_secret="s", callback_url="http://127.0.0.1:8000/webhooks/meta")
        fake.add_phone_number("1065", display_phone_number="15550783881", verified_name="Shop", waba_id="1022")
        with FakeGraphServer(fake) as server:      # Graph base URL: server.url (+ "/v24.0")
            await fake.customer_writes("1065", "16505551234", "Hi")   # opens the 24 h window
            ...                                    # our code sends through server.url
            await fake.wait_for_webhooks_idle()
            assert len(fake.sent_by_callback_data()["msg-1"]) == 1

    Limits, faults and timings are constructor arguments; the rates and durations can also change at run time
    through `set_faults` (or `POST /_fake/faults`).
    """

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        callback_url: str | None = None,
        throughput_per_second: int = 80,
        pair_burst: int = 45,
        pair_interval_seconds: float = 6.0,
        window_hours: float = 24.0,
        status_delay_seconds: float = 0.05,
        webhook_batch_size: int = 1,
        webhook_batch_interval_seconds: float = 0.02,
        failed_status_rate: float = 0.0,
        duplicate_status_rate: float = 0.0,
        reorder_status_rate: float = 0.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        slow_rate: float = 0.0,
        timeout_seconds: float = 30.0,
        slow_seconds: float = 1.0,
        template_review_seconds: float = 1.0,
        seed: int | None = None,
        enforce_window: bool = True,
    ) -> None:
        if not access_token or not app_secret:
            raise ValueError("access_token and app_secret must not be empty")
        self.access_token = access_token
        self.app_secret = app_secret
        self.window_hours = window_hours
        self.enforce_window = enforce_window
        self.failed_status_rate = self.duplicate_status_rate = self.reorder_status_rate = 0.0
        self.error_rate = self.timeout_rate = self.slow_rate = 0.0
        self.timeout_seconds = self.slow_seconds = self.status_delay_seconds = self.template_review_seconds = 0.0
        self.set_faults(
            failed_status_rate=failed_status_rate,
            duplicate_status_rate=duplicate_status_rate,
            reorder_status_rate=reorder_status_rate,
            error_rate=error_rate,
            timeout_rate=timeout_rate,
            slow_rate=slow_rate,
            timeout_seconds=timeout_seconds,
            slow_seconds=slow_seconds,
            status_delay_seconds=status_delay_seconds,
            template_review_seconds=template_review_seconds,
        )
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._phones: dict[str, PhoneNumber] = {}
        self._wabas: set[str] = set()
        self._templates = templates.TemplateStore(self._new_id)
        self._windows: dict[tuple[str, str], float] = {}
        self._undeliverable: set[str] = set()
        self._inbound_ids: set[str] = set()
        self._next_faults: deque[GraphError | str] = deque()
        self._pairs = PairLimiter(pair_burst, pair_interval_seconds)
        self._throughput = ThroughputLimiter(throughput_per_second)
        self._wamids = WamidFactory(self._rng)
        self.sent: list[SentMessage] = []
        self.read_receipts: list[str] = []
        self.media: dict[str, MediaItem] = {}
        self.stats = FakeStats()
        self._poster = WebhookPoster(app_secret, callback_url, self.stats)
        self.webhook_deliveries: list[WebhookDelivery] = self._poster.deliveries
        self._statuses = StatusQueue(
            self._poster, batch_size=webhook_batch_size, batch_interval=webhook_batch_interval_seconds
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._reviews: dict[str, asyncio.TimerHandle] = {}
        self.app = build_app(self)

    @classmethod
    def from_options(
        cls,
        *,
        access_token: str,
        app_secret: str,
        phone_number_id: str | None = None,
        display_phone_number: str = "15550000001",
        verified_name: str = "Kaanha Demo",
        waba_id: str = "100000000000001",
        hello_world: bool = True,
        **options: Any,
    ) -> FakeGraphAPI:
        """Build from CLI-style options, where None means "the default"; optionally with one number ready.

        With `phone_number_id`, that number is registered and (if `hello_world`) it gets Meta's sample
        `hello_world` template (en_US, no variables), so a demo can send at once.
        """
        fake = cls(
            access_token=access_token,
            app_secret=app_secret,
            **{name: value for name, value in options.items() if value is not None},
        )
        if phone_number_id is not None:
            fake.add_phone_number(
                phone_number_id, display_phone_number=display_phone_number, verified_name=verified_name, waba_id=waba_id
            )
            if hello_world:
                fake.add_template(waba_id, **HELLO_WORLD)
        return fake

    # --- configuration -------------------------------------------------------------------------------------

    @property
    def callback_url(self) -> str | None:
        return self._poster.callback_url

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        """Refuses (ValueError) any host that is not loopback, like the constructor."""
        self._poster.callback_url = url

    def set_faults(self, **values: float) -> dict[str, float]:
        """Change fault rates (0..1) and durations (seconds >= 0) at run time; returns them all."""
        for name, value in values.items():
            if name not in RATES and name not in DURATIONS:
                raise ValueError(f"unknown fault setting {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if value < 0 or (name in RATES and value > 1):
                raise ValueError(f"{name} must be between 0 and 1" if name in RATES else f"{name} must be >= 0")
        for name, value in values.items():
            setattr(self, name, float(value))
        return self.faults()

    def faults(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in (*RATES, *DURATIONS)}

    # --- test set-up (any thread) -------------------------------------------------------------------------

    def add_phone_number(
        self, phone_number_id: str, *, display_phone_number: str, verified_name: str, waba_id: str
    ) -> None:
        with self._lock:
            self._phones[phone_number_id] = PhoneNumber(phone_number_id, display_phone_number, verified_name, waba_id)
            self._wabas.add(waba_id)

    def add_template(
        self,
        waba_id: str,
        *,
        name: str,
        language: str,
        category: str,
        components: list[dict[str, Any]],
        status: str = "APPROVED",
        parameter_format: str = "POSITIONAL",
    ) -> str:
        """Register a template as if it had been reviewed (no webhook); returns its numeric id.

        It goes through the same checks as `POST /message_templates`, so a typo in a test fails loudly.
        """
        if status not in templates.STATUSES:
            raise ValueError(f"status must be one of {sorted(templates.STATUSES)}")
        body = {
            "name": name,
            "language": language,
            "category": category,
            "components": components,
            "parameter_format": parameter_format,
        }
        try:
            template = self._templates.add(waba_id, templates.check_new_template(body), status)
        except GraphError as error:
            raise ValueError(error.details) from None
        self._wabas.add(waba_id)
        return template.id

    def open_window(self, phone_number_id: str, wa_id: str, at: float | None = None) -> None:
        """As if the customer had written at `at` (Unix seconds, default now), without a webhook."""
        self._windows[(phone_number_id, wa_id)] = time.time() if at is None else at

    def mark_undeliverable(self, wa_id: str) -> None:
        """Sends to `wa_id` are accepted, then fail with a `failed` status (131026)."""
        self._undeliverable.add(wa_id)

    def fail_next(self, code: int, *, http_status: int = 400, message: str | None = None, count: int = 1) -> None:
        """The next `count` send requests answer this Graph error and are not accepted."""
        for _ in range(count):
            self._next_faults.append(GraphError(code, message=message, http_status=http_status))

    def timeout_next(self, count: int = 1) -> None:
        """The next `count` sends are processed (accepted if valid) but answered `timeout_seconds` late."""
        self._next_faults.extend([TIMEOUT] * count)

    def add_media(self, data: bytes, mime_type: str, *, phone_number_id: str | None = None) -> str:
        """Store media as if a customer had sent it; returns its media id (for inbound-media tests)."""
        with self._lock:
            media_id = self._new_id()
            self.media[media_id] = MediaItem(
                media_id, data, mime_type, hashlib.sha256(data).hexdigest(), phone_number_id
            )
        return media_id

    def sent_by_callback_data(self) -> dict[str, list[SentMessage]]:
        """Accepted sends grouped by `biz_opaque_callback_data` (exactly-once checks: every list has one item)."""
        grouped: dict[str, list[SentMessage]] = defaultdict(list)
        for message in list(self.sent):
            if message.biz_opaque_callback_data is not None:
                grouped[message.biz_opaque_callback_data].append(message)
        return dict(grouped)

    def template(self, waba_id: str, name: str, language: str) -> Template | None:
        """The template of that WABA, name and language (to read its id or status in a test)."""
        return self._templates.find(waba_id, name, language)

    # --- customers and webhooks (async, any loop) ---------------------------------------------------------

    async def customer_writes(self, phone_number_id: str, wa_id: str, text: str, *, name: str = "Customer") -> str:
        """Open the window and post a signed inbound text webhook (waits for its delivery); returns the wamid."""
        phone = self._known_phone(phone_number_id)
        return await self._on_loop(self._customer_writes(phone, wa_id, text, name))

    def customer_writes_sync(
        self, phone_number_id: str, wa_id: str, text: str, *, name: str = "Customer", timeout: float = 10.0
    ) -> str:
        """`customer_writes` from a thread that is not the fake's loop (the fake must be served)."""
        phone = self._known_phone(phone_number_id)
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("customer_writes_sync needs a running FakeGraphServer; use `await customer_writes`")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("on the fake's own loop, use `await customer_writes(...)`")
        future = asyncio.run_coroutine_threadsafe(self._customer_writes(phone, wa_id, text, name), loop)
        wamid: str = future.result(timeout)
        return wamid

    async def set_template_status(self, template_id: str, status: str) -> None:
        """Change a template's status (e.g. REJECTED, PAUSED) and post its `message_template_status_update`."""
        if status not in templates.STATUSES:
            raise ValueError(f"status must be one of {sorted(templates.STATUSES)}")
        await self._on_loop(self._review(template_id, status))

    async def wait_for_webhooks_idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (public API)
        """Wait until nothing is scheduled or being posted; raises TimeoutError after `timeout` seconds.

        It polls a counter, so it works from any loop or thread while the fake's loop does the work.
        """
        deadline = time.monotonic() + timeout
        while self._poster.pending > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._poster.pending} webhook(s) still pending after {timeout} s")
            await asyncio.sleep(0.005)

    @property
    def pending_webhooks(self) -> int:
        return self._poster.pending

    # --- loop binding -------------------------------------------------------------------------------------

    def _attach(self) -> None:
        """Bind to the running loop (first request, or the server's start-up) and start background work."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and self._loop.is_running():
            raise RuntimeError("this FakeGraphAPI already runs on another event loop")
        self._loop = loop
        self._closing = asyncio.Event()
        self._poster.start()
        self._statuses.start()

    async def aclose(self) -> None:
        """Stop background work when the app is driven in-process (e.g. httpx.ASGITransport runs no lifespan).

        A FakeGraphServer (or any server running the app's lifespan) does this by itself.
        """
        await self._aclose()

    async def _aclose(self) -> None:
        """Stop background work on the fake's loop; answers held back by timeouts are released first."""
        if self._loop is None:
            return
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError("close the fake from the event loop it runs on")
        self._begin_close()
        await self._statuses.stop()
        for timer in self._reviews.values():
            timer.cancel()
            self._poster.release()
        self._reviews.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._poster.aclose()
        self._loop = None

    def _begin_close(self) -> None:
        if self._closing is not None:
            self._closing.set()

    async def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the fake's loop, from that loop or another one."""
        if self._loop is None:
            self._attach()
        assert self._loop is not None
        if self._loop is asyncio.get_running_loop():
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, cut short when the server stops so shutdown never waits for a fake timeout."""
        if self._closing is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- lookups ------------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        """Numeric ids as Graph's: 16 digits, unique within this fake."""
        return str(1_000_000_000_000_000 + next(self._ids) * 7919 + self._rng.randrange(7919))

    def _known_phone(self, phone_number_id: str) -> PhoneNumber:
        phone = self._phones.get(phone_number_id)
        if phone is None:
            raise ValueError(f"unknown phone_number_id {phone_number_id!r}: call add_phone_number first")
        return phone

    def _phone(self, phone_number_id: str, method: str = "post") -> PhoneNumber:
        phone = self._phones.get(phone_number_id)
        if phone is None:
            raise unknown_object(phone_number_id, method)
        return phone

    def _waba(self, waba_id: str, method: str) -> str:
        if waba_id not in self._wabas:
            raise unknown_object(waba_id, method)
        return waba_id

    def _window_open(self, phone_number_id: str, wa_id: str, now: float) -> bool:
        opened = self._windows.get((phone_number_id, wa_id))
        return opened is not None and now - opened < self.window_hours * 3600

    # --- sends (event loop) -------------------------------------------------------------------------------

    def _draw_fault(self) -> GraphError | str | None:
        """An injected fault for this send: queued ones first, then the random rates."""
        with contextlib.suppress(IndexError):
            return self._next_faults.popleft()
        if self.error_rate and self._rng.random() < self.error_rate:
            code = self._rng.choice((131000, 2))
            return GraphError(code, http_status=500)
        if self.timeout_rate and self._rng.random() < self.timeout_rate:
            return TIMEOUT
        if self.slow_rate and self._rng.random() < self.slow_rate:
            return SLOW
        return None

    def _send(self, phone: PhoneNumber, body: Any) -> dict[str, Any]:
        """Validate a send as Meta does, apply limits, record it and schedule its statuses."""
        to, kind = validation.check_envelope(body)
        validation.check_message(kind, body, self.media.__contains__)
        category = "service"
        if kind == "template":
            category = self._check_template_send(phone, body["template"])
        elif self.enforce_window and not self._window_open(phone.id, to, time.time()):
            raise GraphError(131047)
        self._take_rate(phone.id, to)
        message = SentMessage(
            self._wamids.new(to), phone.id, to, kind, body, body.get("biz_opaque_callback_data"), time.time()
        )
        self.sent.append(message)
        self.stats.accepted += 1
        self._schedule_statuses(phone, message, category)
        reply: dict[str, Any] = {"id": message.wamid}
        if kind == "template":
            reply["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [reply]}

    def _check_template_send(self, phone: PhoneNumber, template_object: dict[str, Any]) -> str:
        """132001 unless the template exists for this WABA in that language and is APPROVED; then 132000."""
        name, language = template_object["name"], template_object["language"]["code"]
        template = self._templates.find(phone.waba_id, name, language)
        if template is None or template.status != "APPROVED":
            state = "does not exist" if template is None else f"is {template.status}"
            raise GraphError(132001, f"template name ({name}) {state} in {language}")
        templates.check_send_parameters(template.spec, template_object.get("components", []))
        return template.spec.category.lower()

    def _take_rate(self, phone_number_id: str, to: str) -> None:
        now = time.monotonic()
        pair = (phone_number_id, to)
        if not self._throughput.allows(phone_number_id, now):
            raise GraphError(130429)
        if not self._pairs.allows(pair, now):
            raise GraphError(131056)
        self._throughput.take(phone_number_id, now)
        self._pairs.take(pair, now)

    def _schedule_statuses(self, phone: PhoneNumber, message: SentMessage, category: str) -> None:
        """sent, delivered, read a status delay apart (or sent, failed), with optional reorder and duplicates."""
        if self.callback_url is None:
            return
        failed = message.to in self._undeliverable or self._rng.random() < self.failed_status_rate
        names = ("sent", "failed") if failed else ("sent", "delivered", "read")
        delay = self.status_delay_seconds
        start = time.monotonic()
        offsets = [delay * (step + 1) for step in range(len(names))]
        if self.reorder_status_rate and self._rng.random() < self.reorder_status_rate:
            offsets = self._shuffled(offsets)
        for step, (name, offset) in enumerate(zip(names, offsets, strict=True)):
            item = status_item(
                wamid=message.wamid,
                status=name,
                timestamp=message.accepted_at + delay * (step + 1),
                recipient_id=message.to,
                callback_data=message.biz_opaque_callback_data,
                category=category,
                errors=[status_error(131026)] if name == "failed" else None,
            )
            self._statuses.push(start + offset, phone, item)
            if self.duplicate_status_rate and self._rng.random() < self.duplicate_status_rate:
                self._statuses.push(start + offset + delay / 2, phone, item)

    def _shuffled(self, offsets: list[float]) -> list[float]:
        """A permutation other than the identity, so a reordered message is really posted out of order."""
        shuffled = offsets[:]
        while shuffled == offsets:
            self._rng.shuffle(shuffled)
        return shuffled

    def _mark_read(self, body: dict[str, Any]) -> dict[str, Any]:
        message_id = validation.check_read_receipt(body)
        if message_id not in self._inbound_ids:
            raise GraphError(100, f"Message {message_id} is not a message this number received.")
        self.read_receipts.append(message_id)
        self.stats.read_receipts += 1
        return {"success": True}

    async def _customer_writes(self, phone: PhoneNumber, wa_id: str, text: str, name: str) -> str:
        if not wa_id.isdigit():
            raise ValueError("wa_id must be digits only")
        now = time.time()
        wamid = self._wamids.new(wa_id)
        self._inbound_ids.add(wamid)
        self.open_window(phone.id, wa_id, now)
        payload = inbound_text(phone, wa_id=wa_id, name=name, wamid=wamid, text=text, timestamp=now)
        self._poster.hold()
        try:
            await self._poster.deliver(payload)
        finally:
            self._poster.release()
        return wamid

    # --- media (event loop) -------------------------------------------------------------------------------

    def _upload_media(self, phone: PhoneNumber, mime_type: str, data: bytes) -> str:
        check_upload(mime_type, data)
        return self.add_media(data, mime_type, phone_number_id=phone.id)

    def _media_item(self, media_id: str, method: str = "get") -> MediaItem:
        item = self.media.get(media_id)
        if item is None:
            raise unknown_object(media_id, method)
        return item

    def media_hash(self, media_id: str) -> str:
        """The `hash` of a media download URL, so a guessed URL is refused like a stale lookaside one."""
        return hmac.new(self.app_secret.encode(), media_id.encode(), hashlib.sha256).hexdigest()[:32]

    def _media_info(self, item: MediaItem, base_url: str) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "url": f"{base_url}/_fake/media/{item.id}/download?hash={self.media_hash(item.id)}",
            "mime_type": item.mime_type,
            "sha256": item.sha256,
            "file_size": str(item.file_size),
            "id": item.id,
        }

    # --- templates (event loop, or any thread for add_template) -------------------------------------------

    def _create_template(self, waba_id: str, body: Any) -> dict[str, Any]:
        """Store as PENDING; after `template_review_seconds` it is APPROVED and the webhook is posted."""
        template = self._templates.add(waba_id, templates.check_new_template(body), "PENDING")
        self._poster.hold()
        timer = asyncio.get_running_loop().call_later(self.template_review_seconds, self._end_review, template.id)
        self._reviews[template.id] = timer
        return {"id": template.id, "status": "PENDING", "category": template.spec.category}

    def _end_review(self, template_id: str) -> None:
        self._reviews.pop(template_id, None)
        self._spawn(self._approve_after_review(template_id))

    async def _approve_after_review(self, template_id: str) -> None:
        try:
            await self._review(template_id, "APPROVED", only_if="PENDING")
        finally:
            self._poster.release()

    async def _review(self, template_id: str, status: str, *, only_if: str | None = None) -> None:
        template = self._templates.by_id(template_id)
        if template is None or (only_if is not None and template.status != only_if):
            return
        template.status = status
        payload = template_status_update(
            waba_id=template.waba_id,
            template_id=template.id,
            name=template.spec.name,
            language=template.spec.language,
            category=template.spec.category,
            event=status,
            time=time.time(),
        )
        await self._poster.deliver(payload)


HELLO_WORLD: dict[str, Any] = {
    "name": "hello_world",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
        {
            "type": "BODY",
            "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp "
            "message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us.",
        },
        {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
    ],
}

"""The webhook dispatcher: claims due deliveries with a lease, POSTs them side by side, records every attempt.

Isolation is the design goal: a slow or dead endpoint must never delay the others. So each attempt
is its own asyncio task (a claimed batch is never waited for as a whole), at most
`webhooks.concurrency` run in a process, and at most `webhooks.per_endpoint_concurrency` run for one
endpoint across every process (counted from `delivering` rows with live leases, and endpoints at
their cap are left out of the claim, so one endpoint's backlog can't fill a batch). The HTTP call
runs outside any transaction; one transaction then records the attempt, moves the delivery on
(succeeded, pending with its next attempt per `schedule`, or failed) and keeps the endpoint's
health: three days of failure (`webhooks.disable_after_days`) disables it and tells its organization.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.database import is_transient
from kaanha.events.notify import delivery_wake
from kaanha.events.service import emit
from kaanha.events.types import PING, WEBHOOK_ENDPOINT_DISABLED
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from kaanha.runtime import Runtime
from kaanha.webhooks.fanout import forget_endpoints
from kaanha.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from kaanha.webhooks.schedule import retry_delay
from kaanha.webhooks.schemas import endpoint_out
from kaanha.webhooks.signing import event_body, signed_headers, signing_secrets
from kaanha.webhooks.transport import AttemptResult, post

logger = logging.getLogger("kaanha.webhooks")

PING_MESSAGE = "A test event from Kaanha: your endpoint received and verified it if it answered 2xx."
# On PostgreSQL, claims from every dispatcher take turns on this lock (for the few milliseconds of
# the claim) so that the per-endpoint cap, counted from the rows, holds across processes.
_CLAIM_LOCK_KEY = 0x6B61616E6861_01  # "kaanha" + 1
# Candidates looked at per claim beyond what is asked for, so that rows of an endpoint with little
# room left don't crowd out everyone else's.
_CANDIDATE_FACTOR = 4
_MIN_CANDIDATES = 256
# On shutdown, attempts in flight get this long to finish; the rest are released for another process.
_SHUTDOWN_GRACE_SECONDS = 2.0
_RECORD_TRIES = 5
_MAX_ERROR_CHARS = 1000
_MAX_EXCERPT_CHARS = 1000
_MAX_REASON_CHARS = 500
# Longer than the longest wait of the retry schedule (12 h + 20%).
_QUIET_GAP = timedelta(hours=24)

T = TypeVar("T")


@dataclass(frozen=True)
class _Work:
    """One claimed delivery with what its attempt needs (read when it was claimed)."""

    delivery: WebhookDelivery
    endpoint: WebhookEndpoint | None
    event: Event | None


class WebhookDispatcher:
    def __init__(self, runtime: Runtime, *, concurrency: int | None = None, poll_interval: float | None = None) -> None:
        settings = runtime.settings.webhooks
        self.runtime = runtime
        self.concurrency = concurrency or settings.concurrency
        self.per_endpoint = settings.per_endpoint_concurrency
        self.poll_interval = poll_interval if poll_interval is not None else settings.poll_interval_seconds
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.dispatcher_id = f"{socket.gethostname()[:32]}:{os.getpid()}:{random.randrange(1 << 30):x}"
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run_once(self) -> int:
        """Claim what is due (as many as there are free slots), attempt each, wait for every attempt in
        flight; return how many were claimed. For tests and tools: `run_forever` never waits on a batch."""
        claimed, _asked = await self._top_up()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        return claimed

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set: keep up to `concurrency` attempts running, topping up as each
        ends; wake on a commit that emitted events (this process) or poll (others)."""
        wake = delivery_wake()
        try:
            while not stop.is_set():
                wake.clear()
                self._slot_freed.clear()
                try:
                    claimed, asked = await self._top_up()
                except Exception as error:
                    if is_transient(error):
                        logger.warning("webhook claim met a busy database; trying again shortly")
                    else:
                        logger.exception("webhook dispatcher loop error; retrying shortly")
                    claimed, asked = 0, 1
                if asked and claimed:
                    # More may be due at once. A partial claim too: its candidates may all have been
                    # one endpoint's backlog (a hanging one whose timeouts just freed its room), while
                    # healthy endpoints' deliveries wait behind them; now that it is capped, they come.
                    continue
                # An attempt ending frees a slot and its endpoint's room: claim again then, not at the next poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(wake, stop, self._slot_freed), timeout=self.poll_interval)
        finally:
            await self._shut_down()

    async def _top_up(self) -> tuple[int, int]:
        """Claim up to the free slots and start an attempt task for each; (claimed, asked)."""
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0, 0
        async with self.runtime.database.transaction() as session:
            works = await _claim(
                session, dispatcher_id=self.dispatcher_id, limit=free, per_endpoint=self.per_endpoint, lease=self.lease
            )
        for work in works:
            task = asyncio.create_task(self._attempt(work), name=f"webhook-{work.delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(works), free

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook attempt task failed", exc_info=task.exception())

    async def _attempt(self, work: _Work) -> None:
        delivery, endpoint, event = work.delivery, work.endpoint, work.event
        try:
            if endpoint is None or event is None or not endpoint.enabled:
                # Disabled (by its owner, or by us after days of failure) or deleted: nothing is sent.
                await _retrying(lambda: self._drop(delivery))
                return
            result = await _send(self.runtime, endpoint, event)
            await _retrying(lambda: self._record(delivery, result))
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is attempted again; receivers dedupe on webhook-id.
            logger.exception("webhook delivery %s could not be recorded; it will be attempted again", delivery.id)

    async def _drop(self, delivery: WebhookDelivery) -> None:
        moment = now()
        async with self.runtime.database.transaction() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.locked_by == self.dispatcher_id,
                    WebhookDelivery.status == "delivering",
                )
                .values(status="failed", finished_at=moment, next_attempt_at=None, locked_by=None, locked_until=None)
            )

    async def _record(self, delivery: WebhookDelivery, result: AttemptResult) -> None:
        """One transaction: the attempt, the delivery's next state, the endpoint's health."""
        moment = now()
        settings = self.runtime.settings.webhooks
        counted = {"attempts": WebhookDelivery.attempts + 1, "last_attempt_at": moment}
        settled = {"status": "succeeded", "finished_at": moment, "next_attempt_at": None}
        async with self.runtime.database.transaction() as session:
            # A write first: it takes the row (and on SQLite the write lock) before anything is read. A
            # success is settled right here; it holds only while the lease is still ours.
            number = await session.scalar(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status == "delivering",
                    WebhookDelivery.locked_by == self.dispatcher_id,
                )
                .values(**counted, **(settled | {"locked_by": None, "locked_until": None} if result.succeeded else {}))
                .returning(WebhookDelivery.attempts)
            )
            held = number is not None
            if number is None:
                # Our lease ran out (another dispatcher took it) or a manual retry settled it: the attempt
                # is logged, the delivery's state is theirs.
                logger.warning("webhook delivery %s changed hands during its attempt", delivery.id)
                number = await session.scalar(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery.id)
                    .values(**counted)
                    .returning(WebhookDelivery.attempts)
                )
                if number is None:
                    return  # deleted with its endpoint meanwhile
            session.add(_attempt_row(delivery, result, number=number, trigger="schedule", at=moment))
            await session.flush()
            enabled = await _judge_endpoint(
                session,
                endpoint_id=delivery.endpoint_id,
                organization_id=delivery.organization_id,
                result=result,
                moment=moment,
                disable_after=timedelta(days=settings.disable_after_days),
            )
            if not held or result.succeeded:
                return
            delay = retry_delay(await _scheduled_attempts(session, delivery.id))
            if delay is None or not enabled:
                retry: dict[str, object] = {"status": "failed", "finished_at": moment, "next_attempt_at": None}
            else:
                retry = {"status": "pending", "next_attempt_at": moment + delay}
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id)
                .values(**retry, locked_by=None, locked_until=None)
            )

    async def _shut_down(self) -> None:
        """Let attempts in flight finish briefly; cancel the rest and hand their deliveries back at once."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if not pending:
            return
        try:
            async with self.runtime.database.transaction() as session:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.locked_by == self.dispatcher_id, WebhookDelivery.status == "delivering")
                    .values(status="pending", locked_by=None, locked_until=None)
                )
        except Exception:
            logger.exception("could not release webhook deliveries on shutdown; their leases will run out")


async def _claim(
    session: AsyncSession, *, dispatcher_id: str, limit: int, per_endpoint: int, lease: timedelta
) -> list[_Work]:
    """Lease up to `limit` due deliveries, never more than `per_endpoint` in flight for one endpoint.

    Due: pending with `next_attempt_at` passed, or delivering with a lease that ran out (its
    dispatcher died). Endpoints already at their cap are excluded in SQL, and the rest get at most
    their remaining room, so a hanging endpoint's backlog never takes the places of healthy ones.
    """
    moment = now()
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK_KEY)))
    delivery = WebhookDelivery
    due = or_(
        and_(delivery.status == "pending", delivery.next_attempt_at <= moment),
        and_(delivery.status == "delivering", delivery.locked_until < moment),
    )
    busy = (
        select(delivery.endpoint_id.label("endpoint_id"), func.count().label("in_flight"))
        .where(delivery.status == "delivering", delivery.locked_until >= moment)
        .group_by(delivery.endpoint_id)
        .subquery("busy")
    )
    full = select(busy.c.endpoint_id).where(busy.c.in_flight >= per_endpoint)
    candidates = (
        select(delivery.id, delivery.endpoint_id, delivery.next_attempt_at)
        .where(due, delivery.endpoint_id.not_in(full))
        .order_by(delivery.next_attempt_at)
        .limit(max(limit * _CANDIDATE_FACTOR, _MIN_CANDIDATES))
        .subquery("candidates")
    )
    ranked = (
        select(
            candidates.c.id,
            candidates.c.next_attempt_at,
            func.row_number()
            .over(partition_by=candidates.c.endpoint_id, order_by=(candidates.c.next_attempt_at, candidates.c.id))
            .label("place"),
            (per_endpoint - func.coalesce(busy.c.in_flight, 0)).label("room"),
        )
        .select_from(candidates.outerjoin(busy, busy.c.endpoint_id == candidates.c.endpoint_id))
        .subquery("ranked")
    )
    picked = select(ranked.c.id).where(ranked.c.place <= ranked.c.room).order_by(ranked.c.next_attempt_at).limit(limit)
    # `due` again where rows are locked: a row another dispatcher just took is rechecked there.
    lockable = select(delivery.id).where(delivery.id.in_(picked), due).with_for_update(skip_locked=True)
    claimed = list(
        await session.scalars(
            update(delivery)
            .where(delivery.id.in_(lockable))
            .values(status="delivering", locked_by=dispatcher_id, locked_until=moment + lease)
            .returning(delivery),
            execution_options={"synchronize_session": False},
        )
    )
    if not claimed:
        return []
    endpoints = {
        endpoint.id: endpoint
        for endpoint in await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_({row.endpoint_id for row in claimed}))
        )
    }
    events = {
        event.id: event
        for event in await session.scalars(select(Event).where(Event.id.in_({row.event_id for row in claimed})))
    }
    return [_Work(row, endpoints.get(row.endpoint_id), events.get(row.event_id)) for row in claimed]


async def _send(runtime: Runtime, endpoint: WebhookEndpoint, event: Event) -> AttemptResult:
    """Sign the event for the endpoint and POST it (outside any transaction)."""
    content = event_body(event)
    try:
        keys = signing_secrets(endpoint, runtime.secret_box)
    except ValueError:
        return AttemptResult(
            succeeded=False,
            status_code=None,
            duration_ms=0,
            response_excerpt=None,
            error="the endpoint's signing secret cannot be decrypted (was KAANHA_SECRET_KEY changed?); rotate it",
        )
    headers = signed_headers(keys, message_id=event.id, content=content)
    return await post(runtime, endpoint.url, content=content, headers=headers)


def _attempt_row(
    delivery: WebhookDelivery, result: AttemptResult, *, number: int, trigger: str, at: datetime
) -> WebhookAttempt:
    return WebhookAttempt(
        id=new_id("wha"),
        organization_id=delivery.organization_id,
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        attempt=number,
        succeeded=result.succeeded,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_excerpt=result.response_excerpt[:_MAX_EXCERPT_CHARS] if result.response_excerpt else None,
        error=result.error[:_MAX_ERROR_CHARS] if result.error else None,
        trigger=trigger,
        created_at=at,
    )


async def _scheduled_attempts(session: AsyncSession, delivery_id: str) -> int:
    """Attempts made by the schedule (manual ones don't move it along)."""
    counted = await session.scalar(
        select(func.count())
        .select_from(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.trigger == "schedule")
    )
    return int(counted or 0)


async def _judge_endpoint(
    session: AsyncSession,
    *,
    endpoint_id: str,
    organization_id: str,
    result: AttemptResult,
    moment: datetime,
    disable_after: timedelta,
) -> bool:
    """Keep the endpoint's failure clock; disable it after `disable_after` of failing.

    Returns whether it still takes deliveries (after a success: True, whatever its state).

    `failing_since` is the first failure after a success, and any success clears it, so only an
    endpoint that has not accepted a single delivery for the whole period is disabled.
    """
    endpoint = WebhookEndpoint
    if result.succeeded:
        # Matches (and writes) only when a failure clock is running: the common case costs no write.
        await session.execute(
            update(endpoint)
            .where(endpoint.id == endpoint_id, endpoint.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return True
    # A failure after a quiet day starts the clock afresh: with nothing sent in between, there is
    # no evidence the endpoint was down all along (the schedule never waits that long between tries).
    restart = or_(
        endpoint.failing_since.is_(None),
        endpoint.last_failure_at.is_(None),
        endpoint.last_failure_at < moment - _QUIET_GAP,
    )
    await session.execute(
        update(endpoint)
        .where(endpoint.id == endpoint_id)
        .values(failing_since=case((restart, moment), else_=endpoint.failing_since), last_failure_at=moment)
    )
    state = (
        await session.execute(select(endpoint.enabled, endpoint.failing_since).where(endpoint.id == endpoint_id))
    ).one_or_none()
    if state is None or not state.enabled:
        return False
    if state.failing_since is None or moment - state.failing_since < disable_after:
        return True
    await _disable(
        session,
        endpoint_id=endpoint_id,
        organization_id=organization_id,
        moment=moment,
        reason=_disable_reason(state.failing_since, disable_after, result),
    )
    return False


async def _disable(
    session: AsyncSession, *, endpoint_id: str, organization_id: str, moment: datetime, reason: str
) -> None:
    """Turn the endpoint off, give up its pending deliveries, and tell the organization (once)."""
    changed = await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
        .values(enabled=False, disabled_at=moment, disabled_reason=reason[:_MAX_REASON_CHARS])
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return  # another attempt's transaction disabled it first
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", finished_at=moment, next_attempt_at=None)
    )
    # The reason may quote the URL (and its query string): it goes to the organization, not to the log.
    logger.warning("webhook endpoint %s of %s disabled after days of failure", endpoint_id, organization_id)
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).execution_options(populate_existing=True)
    )
    if endpoint is None:
        return
    forget_endpoints(session, organization_id)
    # Its organization's other endpoints and the live stream hear of it; this one no longer receives.
    await emit(session, organization_id=organization_id, type=WEBHOOK_ENDPOINT_DISABLED, data=endpoint_out(endpoint))


def _disable_reason(failing_since: datetime, disable_after: timedelta, result: AttemptResult) -> str:
    days = disable_after.total_seconds() / 86400
    last = result.error or (f"HTTP {result.status_code}" if result.status_code is not None else "no answer")
    return (
        f"Disabled automatically: no delivery succeeded for {days:g} days "
        f"(failing since {failing_since:%Y-%m-%d %H:%M} UTC; last attempt: {last}). "
        "Fix the endpoint, check it with a test event, then enable it again."
    )


async def _retrying(step: Callable[[], Awaitable[T]]) -> T:
    """Run a short transaction again when it lost a race (a deadlock, a busy SQLite): the attempt happened."""
    for tries in range(1, _RECORD_TRIES + 1):
        try:
            return await step()
        except Exception as error:
            if tries == _RECORD_TRIES or not is_transient(error):
                raise
            await asyncio.sleep(random.uniform(0.05, 0.3) * tries)
    raise AssertionError("unreachable")


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# Manual sends, for the REST API: a person asked, so the answer comes back now.


async def deliver_now(runtime: Runtime, *, organization_id: str, delivery_id: str) -> WebhookAttempt:
    """Send one delivery again right now and return the attempt (trigger "manual").

    Success marks the delivery succeeded and clears the endpoint's failure clock. Failure changes
    nothing else: a pending delivery keeps its schedule, a failed one stays failed, and a manual
    failure never counts toward disabling the endpoint. Works whether the endpoint is enabled or not.
    Raises WebhookDeliveryNotFound for an unknown id or another organization's. Opens its own
    transactions and holds none during the call (up to `webhooks.timeout_seconds`).
    """
    async with runtime.database.transaction() as session:
        delivery = await WebhookDeliveryRepository(session, organization_id).get(delivery_id)
        endpoint = await WebhookEndpointRepository(session, organization_id).get(delivery.endpoint_id)
        event = await session.scalar(
            select(Event).where(Event.organization_id == organization_id, Event.id == delivery.event_id)
        )
    if event is None:  # events are deleted only with their deliveries; be safe anyway
        raise WebhookDeliveryRepository.not_found(f"Webhook delivery {delivery_id} not found")
    result = await _send(runtime, endpoint, event)
    return await _retrying(lambda: _record_manual(runtime, delivery, result, failed_status=None))


async def send_test(runtime: Runtime, *, organization_id: str, endpoint_id: str) -> WebhookAttempt:
    """POST a signed `ping` event to one endpoint now, enabled or not, and return the attempt.

    The ping is an Event row with one delivery for this endpoint only (not fanned out, skipped by
    the live stream); it is not retried: a failure leaves the delivery failed. Raises
    WebhookEndpointNotFound for an unknown id or another organization's.
    """
    moment = now()
    async with runtime.database.transaction() as session:
        endpoint = await WebhookEndpointRepository(session, organization_id).get(endpoint_id)
        event = Event(
            id=new_id("evt"),
            organization_id=organization_id,
            type=PING,
            data={"endpointId": endpoint.id, "message": PING_MESSAGE},
            created_at=moment,
        )
        # Leased by the test itself, so the dispatcher leaves it alone unless this process dies mid-call.
        delivery = WebhookDelivery(
            id=new_id("whd"),
            organization_id=organization_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=PING,
            status="delivering",
            attempts=0,
            next_attempt_at=moment,
            locked_by=f"test:{new_id('run')}",
            locked_until=moment + timedelta(seconds=runtime.settings.webhooks.lease_seconds),
            created_at=moment,
        )
        session.add(event)
        await session.flush()
        session.add(delivery)
    result = await _send(runtime, endpoint, event)
    return await _retrying(lambda: _record_manual(runtime, delivery, result, failed_status="failed"))


async def _record_manual(
    runtime: Runtime, delivery: WebhookDelivery, result: AttemptResult, *, failed_status: str | None
) -> WebhookAttempt:
    moment = now()
    values: dict[str, object] = {"attempts": WebhookDelivery.attempts + 1, "last_attempt_at": moment}
    if result.succeeded:
        # Clearing the lease tells a dispatcher attempting it meanwhile that the delivery is settled.
        values.update(status="succeeded", finished_at=moment, next_attempt_at=None, locked_by=None, locked_until=None)
    elif failed_status is not None:
        values.update(status=failed_status, finished_at=moment, next_attempt_at=None, locked_by=None, locked_until=None)
    async with runtime.database.transaction() as session:
        number = await session.scalar(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.organization_id == delivery.organization_id)
            .values(**values)
            .returning(WebhookDelivery.attempts)
        )
        if number is None:
            raise WebhookDeliveryRepository.not_found(f"Webhook delivery {delivery.id} not found")
        attempt = _attempt_row(delivery, result, number=number, trigger="manual", at=moment)
        session.add(attempt)
        if result.succeeded:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == delivery.endpoint_id, WebhookEndpoint.failing_since.is_not(None))
                .values(failing_since=None)
            )
    return attempt

"""Workers: claim due jobs, run each in its own transaction with its completion, retry with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kaanha.database import is_transient
from kaanha.kit.clock import now
from kaanha.models import Job
from kaanha.runtime import Runtime
from kaanha.worker.queue import DEFAULT_LEASE, claim, next_due_at, wake_event

logger = logging.getLogger("kaanha.worker")

Handler = Callable[[AsyncSession, Runtime, Job], Awaitable[None]]
# A handler that commits in steps of its own (a call to Meta must not sit inside a transaction).
StepwiseHandler = Callable[[Runtime, Job, "Lease"], Awaitable[None]]
GiveUpHandler = Callable[[AsyncSession, Runtime, Job, Exception], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
STEPWISE_HANDLERS: dict[str, StepwiseHandler] = {}
GIVE_UP_HANDLERS: dict[str, GiveUpHandler] = {}
# Work that comes back by itself (a template sync every 15 minutes): run in its own transaction.
# Every process runs it on its own clock, so it must claim what it does (a conditional update).
PeriodicHandler = Callable[[AsyncSession, Runtime], Awaitable[None]]
PERIODIC: dict[str, tuple[timedelta, PeriodicHandler]] = {}
HANDLER_MODULES = (
    "kaanha.messages.tasks",
    "kaanha.whatsapp.sandbox.tasks",
    "kaanha.whatsapp.cloud_api.tasks",
    "kaanha.templates.tasks",
    "kaanha.broadcasts.tasks",
    "kaanha.ai_agents.tasks",
    "kaanha.payment_links.tasks",
)


class RetryLater(Exception):
    """Raised by a handler to run the job again after `delay` (throttling, a busy provider)."""

    def __init__(self, reason: str, *, delay: timedelta | None = None, count_attempt: bool = True) -> None:
        super().__init__(reason)
        self.delay = delay
        # False for waits that aren't failures (pacing): they don't use up the job's attempts.
        self.count_attempt = count_attempt


class PermanentFailure(Exception):
    """Raised by a handler whose job can never succeed; it is not retried."""


def task(kind: str, *, on_give_up: GiveUpHandler | None = None) -> Callable[[Handler], Handler]:
    """Register a handler that runs in one transaction with its job's completion.

    `on_give_up` runs (in its own transaction) when the job fails for good, so whatever waited
    on the job can say so instead of waiting forever.
    """

    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        if on_give_up:
            GIVE_UP_HANDLERS[kind] = on_give_up
        return handler

    return register


def stepwise_task(
    kind: str, *, on_give_up: GiveUpHandler | None = None
) -> Callable[[StepwiseHandler], StepwiseHandler]:
    """Register a handler that opens its own transactions and proves its lease with `Lease.hold`."""

    def register(handler: StepwiseHandler) -> StepwiseHandler:
        STEPWISE_HANDLERS[kind] = handler
        if on_give_up:
            GIVE_UP_HANDLERS[kind] = on_give_up
        return handler

    return register


def periodic(name: str, *, every: timedelta) -> Callable[[PeriodicHandler], PeriodicHandler]:
    """Register a check that each worker runs every `every` (the first time soon after it starts)."""

    def register(handler: PeriodicHandler) -> PeriodicHandler:
        PERIODIC[name] = (every, handler)
        return handler

    return register


async def run_periodic(runtime: Runtime, *, only: str | None = None) -> None:
    """Run every periodic check once now (or just `only`), each in its own transaction; for tests too."""
    load_handlers()
    for name, (_every, handler) in PERIODIC.items():
        if only in (None, name):
            async with runtime.database.transaction() as session:
                await handler(session, runtime)


def load_handlers() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop("wake_workers", False):
        wake_event().set()


def backoff(attempt: int) -> timedelta:
    """Exponential from 1 s, capped at 10 minutes, with jitter so retries don't arrive in herds."""
    seconds = min(600.0, 2.0 ** max(0, attempt - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


class LeaseLost(Exception):
    pass


class Lease:
    """A worker's claim on a job, checked and extended inside the caller's transaction."""

    def __init__(self, job_id: str, worker_id: str, duration: timedelta = DEFAULT_LEASE) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        self.duration = duration

    async def hold(self, session: AsyncSession) -> None:
        """Extend the lease, or raise LeaseLost (rolling the caller's transaction back) if it ran out."""
        renewed = await session.execute(
            update(Job)
            .where(Job.id == self.job_id, Job.locked_by == self.worker_id, Job.status == "running")
            .values(locked_until=now() + self.duration)
        )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(self.job_id)


class Worker:
    def __init__(self, runtime: Runtime, *, batch_size: int | None = None, poll_interval: float = 1.0) -> None:
        self.runtime = runtime
        self.batch_size = batch_size or runtime.settings.worker_concurrency
        self.poll_interval = poll_interval
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(1 << 30):x}"
        self.lease = timedelta(seconds=runtime.settings.job_lease_seconds)
        load_handlers()
        # A short random first delay, so workers started together don't all run the checks at once.
        start = now() + timedelta(seconds=random.uniform(1.0, 5.0))
        self.periodic_due = dict.fromkeys(PERIODIC, start)

    async def run_once(self) -> int:
        """Claim one batch of due jobs and run them side by side; return how many were claimed.

        Concurrently, because most jobs wait on the network (Meta answers a send in ~100 ms): one
        at a time, a worker could not reach a number's 80 messages a second.
        """
        jobs = await self._claim(self.batch_size)
        await asyncio.gather(*(self._run(job) for job in jobs))
        return len(jobs)

    async def _run(self, job: Job) -> None:
        try:
            if job.kind in STEPWISE_HANDLERS:
                await STEPWISE_HANDLERS[job.kind](self.runtime, job, Lease(job.id, self.worker_id, self.lease))
                async with self.runtime.database.transaction() as session:
                    await self._finish(session, job)
                return
            handler = HANDLERS.get(job.kind)
            if handler is None:
                raise PermanentFailure(f"no handler for job kind '{job.kind}'")
            async with self.runtime.database.transaction() as session:
                await handler(session, self.runtime, job)
                await self._finish(session, job)
        except LeaseLost:
            logger.warning("job %s lost its lease; its work was rolled back", job.id)
        except Exception as error:
            await self._record_failure(job, error)

    async def _finish(self, session: AsyncSession, job: Job) -> None:
        finished = await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.locked_by == self.worker_id, Job.status == "running")
            .values(status="done", finished_at=now(), locked_until=None)
        )
        if finished.rowcount != 1:  # type: ignore[attr-defined]
            # Our lease ran out and another worker took the job: undo our work, theirs counts.
            raise LeaseLost(job.id)

    async def _record_failure(self, job: Job, error: Exception) -> None:
        retry = isinstance(error, RetryLater) or (
            not isinstance(error, PermanentFailure) and job.attempts < job.max_attempts
        )
        if isinstance(error, RetryLater) and job.attempts >= job.max_attempts * 3:
            retry = False
        delay = error.delay if isinstance(error, RetryLater) and error.delay else backoff(job.attempts)
        if is_transient(error):
            # It lost a race with another transaction (a deadlock, a busy SQLite): run it again soon.
            delay = timedelta(seconds=random.uniform(0.1, 1.0))
            logger.warning("job %s (%s) met a busy database; it runs again shortly: %s", job.id, job.kind, error)
        elif not isinstance(error, RetryLater | PermanentFailure):
            logger.exception("job %s (%s) failed on attempt %s", job.id, job.kind, job.attempts, exc_info=error)
        uncounted = isinstance(error, RetryLater) and not error.count_attempt
        async with self.runtime.database.transaction() as session:
            recorded = await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.worker_id)
                .values(
                    attempts=job.attempts - 1 if uncounted else job.attempts,
                    status="pending" if retry else "failed",
                    run_at=now() + delay,
                    locked_by=None,
                    locked_until=None,
                    last_error=f"{type(error).__name__}: {error}"[:2000],
                    finished_at=None if retry else now(),
                )
            )
            give_up = GIVE_UP_HANDLERS.get(job.kind)
            if not retry and give_up is not None and recorded.rowcount == 1:  # type: ignore[attr-defined]
                await give_up(session, self.runtime, job, error)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, keeping up to `batch_size` jobs running; then finish those running.

        A slot is refilled as soon as its job ends, so one long job (a broadcast's dispatch step) never
        holds the others back; with nothing due, it sleeps until the next job is due or a wake-up.
        """
        wake = wake_event()
        slot_freed = asyncio.Event()
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slot_freed.set()

        while not stop.is_set():
            await self._run_due_periodic()
            wait = self.poll_interval
            free = self.batch_size - len(running)
            # A claim per finished job would cost a transaction each: wait for a quarter of the slots.
            worth_claiming = free >= max(1, self.batch_size // 4) or not running
            try:
                jobs = await self._claim(free) if worth_claiming else []
                for job in jobs:
                    task = asyncio.create_task(self._run(job))
                    running.add(task)
                    task.add_done_callback(finished)
                if jobs and len(running) < self.batch_size:
                    continue  # there may be more due right now
                if not jobs and worth_claiming:
                    async with self.runtime.database.sessions() as session:
                        due = await next_due_at(session)
                    if due is not None:
                        wait = max(0.0, min(wait, (due - now()).total_seconds()))
            except Exception:
                logger.exception("worker loop error; retrying shortly")
            wake.clear()
            slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(wake, stop, slot_freed), timeout=wait)
        await asyncio.gather(*running, return_exceptions=True)

    async def _claim(self, limit: int) -> list[Job]:
        async with self.runtime.database.transaction() as session:
            return await claim(session, worker_id=self.worker_id, limit=limit, lease=self.lease)

    async def _run_due_periodic(self) -> None:
        for name, due in self.periodic_due.items():
            if now() < due:
                continue
            every, handler = PERIODIC[name]
            self.periodic_due[name] = now() + every
            try:
                async with self.runtime.database.transaction() as session:
                    await handler(session, self.runtime)
            except Exception:
                logger.exception("periodic check %s failed; it runs again in %s", name, every)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def drain(runtime: Runtime, *, max_rounds: int = 100) -> int:
    """Run every job that is due now, including those the jobs enqueue; for tests and the CLI."""
    worker = Worker(runtime)
    total = 0
    for _ in range(max_rounds):
        claimed = await worker.run_once()
        total += claimed
        if not claimed:
            break
    return total

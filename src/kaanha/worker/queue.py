"""Enqueueing and claiming jobs. A job row is the outbox entry of the change that asked for it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import Job

DEFAULT_LEASE = timedelta(seconds=60)

# In one process, enqueueing wakes the local workers at once instead of at their next poll.
_wake_event: asyncio.Event | None = None


def wake_event() -> asyncio.Event:
    global _wake_event
    if _wake_event is None:
        _wake_event = asyncio.Event()
    return _wake_event


def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any],
    organization_id: str | None,
    run_at: datetime | None = None,
    delay: timedelta | None = None,
    max_attempts: int = 10,
) -> Job:
    """Add a job to the caller's transaction: it exists exactly when the change that asked for it commits."""
    moment = now()
    job = Job(
        id=new_id("job"),
        kind=kind,
        organization_id=organization_id,
        payload=payload,
        status="pending",
        run_at=run_at or (moment + delay if delay else moment),
        attempts=0,
        max_attempts=max_attempts,
        created_at=moment,
    )
    session.add(job)
    session.info["wake_workers"] = True
    return job


async def claim(session: AsyncSession, *, worker_id: str, limit: int, lease: timedelta = DEFAULT_LEASE) -> list[Job]:
    """Lease up to `limit` due jobs to `worker_id`.

    Jobs whose lease ran out (their worker died) are due again. On PostgreSQL, SKIP LOCKED lets many
    workers claim side by side without waiting on each other; SQLite has one writer at a time anyway.
    """
    moment = now()
    due = (
        select(Job.id)
        .where(
            or_(
                (Job.status == "pending") & (Job.run_at <= moment),
                (Job.status == "running") & (Job.locked_until < moment),
            )
        )
        .order_by(Job.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(await session.scalars(due))
    if not ids:
        return []
    result = await session.scalars(
        update(Job)
        .where(Job.id.in_(ids))
        .values(status="running", locked_by=worker_id, locked_until=moment + lease, attempts=Job.attempts + 1)
        .returning(Job),
        execution_options={"synchronize_session": False},
    )
    return list(result)


async def next_due_at(session: AsyncSession) -> datetime | None:
    pending = await session.scalar(select(Job.run_at).where(Job.status == "pending").order_by(Job.run_at).limit(1))
    leased = await session.scalar(
        select(Job.locked_until).where(Job.status == "running").order_by(Job.locked_until).limit(1)
    )
    candidates = [moment for moment in (pending, leased) if moment is not None]
    return min(candidates) if candidates else None

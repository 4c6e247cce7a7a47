"""The durable job queue: jobs commit with their cause, leases expire, failures retry, stolen work rolls back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from kaanha.kit.clock import clock
from kaanha.models import Job, Organization
from kaanha.worker import runner
from kaanha.worker.queue import claim, enqueue
from kaanha.worker.runner import PermanentFailure, RetryLater, Worker

calls: list[str] = []


@runner.task("test.record")
async def _record(session, _runtime, job):
    calls.append(job.payload["name"])
    if job.payload.get("fail") == "retry":
        raise RetryLater("busy", delay=timedelta(seconds=30))
    if job.payload.get("fail") == "permanent":
        raise PermanentFailure("never")
    if job.payload.get("fail") == "crash":
        raise RuntimeError("boom")
    if job.payload.get("fail") == "deadlock":
        raise OperationalError("UPDATE", {}, Exception("database is locked"))
    session.add(Organization(id=f"org_{job.payload['name']}", name=job.payload["name"]))


async def _enqueue(runtime, **payload):
    async with runtime.database.transaction() as session:
        return enqueue(session, kind="test.record", payload=payload, organization_id=None).id


async def _job(runtime, job_id):
    async with runtime.database.sessions() as session:
        return await session.get(Job, job_id)


async def test_a_job_rolled_back_with_its_cause_never_exists(runtime):
    try:
        async with runtime.database.transaction() as session:
            enqueue(session, kind="test.record", payload={"name": "ghost"}, organization_id=None)
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    async with runtime.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_work_and_completion_commit_together(runtime, frozen_clock):
    calls.clear()
    job_id = await _enqueue(runtime, name="one")
    assert await Worker(runtime).run_once() == 1
    job = await _job(runtime, job_id)
    assert job.status == "done"
    async with runtime.database.sessions() as session:
        assert await session.get(Organization, "org_one") is not None
    assert await Worker(runtime).run_once() == 0
    assert calls == ["one"]


async def test_retry_later_and_permanent_failure(runtime, frozen_clock):
    retry_id = await _enqueue(runtime, name="r", fail="retry")
    dead_id = await _enqueue(runtime, name="p", fail="permanent")
    await Worker(runtime).run_once()
    retried, dead = await _job(runtime, retry_id), await _job(runtime, dead_id)
    assert retried.status == "pending"
    assert retried.run_at == frozen_clock + timedelta(seconds=30)
    assert "busy" in retried.last_error
    assert dead.status == "failed"
    assert await Worker(runtime).run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=31))
    assert await Worker(runtime).run_once() == 1


async def test_crashing_job_backs_off_then_gives_up(runtime, frozen_clock):
    job_id = await _enqueue(runtime, name="c", fail="crash")
    async with runtime.database.transaction() as session:
        job = await session.get(Job, job_id)
        job.max_attempts = 2
    await Worker(runtime).run_once()
    first = await _job(runtime, job_id)
    assert first.status == "pending"
    assert first.run_at > frozen_clock
    clock.advance(timedelta(minutes=11))
    await Worker(runtime).run_once()
    assert (await _job(runtime, job_id)).status == "failed"


async def test_a_job_that_lost_a_race_with_another_transaction_runs_again_within_a_second(runtime, frozen_clock):
    job_id = await _enqueue(runtime, name="d", fail="deadlock")
    await Worker(runtime).run_once()
    job = await _job(runtime, job_id)
    assert job.status == "pending"
    assert frozen_clock < job.run_at <= frozen_clock + timedelta(seconds=1)  # not the minutes of a crash's backoff
    assert "database is locked" in job.last_error


async def test_an_expired_lease_is_claimed_again_and_the_late_worker_rolls_back(runtime, frozen_clock):
    calls.clear()
    job_id = await _enqueue(runtime, name="lease")
    async with runtime.database.transaction() as session:
        (claimed,) = await claim(session, worker_id="dead-worker", limit=1, lease=timedelta(seconds=60))
    assert claimed.id == job_id
    assert await Worker(runtime).run_once() == 0  # still leased to the dead worker
    clock.advance(timedelta(seconds=61))
    assert await Worker(runtime).run_once() == 1  # the lease ran out: taken over and done
    assert (await _job(runtime, job_id)).status == "done"

    # The original worker wakes up and finishes: it no longer holds the lease, so its work rolls back.
    late = Worker(runtime)
    late.worker_id = "dead-worker"
    claimed.payload = {"name": "late"}
    await late._run(claimed)
    async with runtime.database.sessions() as session:
        assert await session.get(Organization, "org_late") is None
    assert (await _job(runtime, job_id)).status == "done"


slow_job_may_finish = asyncio.Event()


@runner.stepwise_task("test.slow")
async def _slow(_runtime, _job, _lease):
    await slow_job_may_finish.wait()


async def test_a_long_job_does_not_hold_back_the_jobs_claimed_after_it(runtime):
    slow_job_may_finish.clear()
    calls.clear()
    async with runtime.database.transaction() as session:
        enqueue(session, kind="test.slow", payload={}, organization_id=None)
    stop = asyncio.Event()
    worker = Worker(runtime, batch_size=4, poll_interval=0.05)
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        await asyncio.sleep(0.2)  # the slow job is claimed and is running
        for n in range(12):
            await _enqueue(runtime, name=f"fast{n}")
        for _ in range(200):
            if len(calls) == 12:
                break
            await asyncio.sleep(0.05)
        # All twelve ran, three slots at a time, while the slow one still held the fourth.
        assert sorted(calls) == sorted(f"fast{n}" for n in range(12))
        assert not running.done()
    finally:
        slow_job_may_finish.set()
        stop.set()
        await asyncio.wait_for(running, timeout=10)

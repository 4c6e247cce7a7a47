"""Background work of the sandbox: delivering its Meta-shaped webhooks to the inbound pipeline."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.models import Job
from kaanha.runtime import Runtime
from kaanha.whatsapp.inbound import process_payload
from kaanha.whatsapp.sandbox.provider import WEBHOOK_JOB
from kaanha.worker.runner import task


@task(WEBHOOK_JOB)
async def deliver_sandbox_webhook(session: AsyncSession, _runtime: Runtime, job: Job) -> None:
    await process_payload(session, job.payload)

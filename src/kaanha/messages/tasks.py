"""Background work of messages: handing a queued message to the organization's WhatsApp provider."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.contacts.repository import ContactRepository
from kaanha.kit.clock import now
from kaanha.messages.repository import MessageRepository
from kaanha.messages.service import SEND_JOB
from kaanha.messages.status import advance_status
from kaanha.models import Job
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.whatsapp.provider import Outbound, ProviderError
from kaanha.whatsapp.providers import provider_for
from kaanha.worker.runner import RetryLater, task


@task(SEND_JOB)
async def send_queued_message(session: AsyncSession, runtime: Runtime, job: Job) -> None:
    """Send one queued message. Its `sent` status commits with the job's completion, so it is sent once."""
    organization_id = job.organization_id or ""
    messages = MessageRepository(session, organization_id)
    message = await messages.find(job.payload["messageId"])
    if message is None or message.status != "queued":
        return  # deleted with its contact, or already handled
    contact = await ContactRepository(session, organization_id).get(message.contact_id)
    reply_to = await messages.find(message.reply_to_id) if message.reply_to_id else None
    connection = await get_connection(session, organization_id)
    outbound = Outbound(
        message=message,
        contact=contact,
        connection=connection,
        reply_to_whatsapp_id=reply_to.whatsapp_message_id if reply_to else None,
    )
    try:
        result = await provider_for(connection, runtime).send(session, outbound)
    except ProviderError as error:
        if error.retryable:
            raise RetryLater(str(error)) from error
        await advance_status(
            session,
            organization_id=organization_id,
            message_id=message.id,
            status="failed",
            at=now(),
            error_code=error.code,
            error_message=f"{error.message}: {error.explanation}"
            if error.explanation != error.message
            else error.message,
        )
        return
    message.whatsapp_message_id = result.whatsapp_message_id
    await session.flush()
    await advance_status(session, organization_id=organization_id, message_id=message.id, status="sent", at=now())

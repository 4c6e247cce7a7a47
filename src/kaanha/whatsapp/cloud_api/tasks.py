"""Background work of the WhatsApp connection: stored webhooks processed, inbound media fetched, read receipts."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.media.rules import MB
from kaanha.media.service import clean_filename
from kaanha.media.storage import BlobTooLarge
from kaanha.messages.repository import MessageRepository
from kaanha.models import InboundEvent, Job, Media, Message
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.whatsapp.cloud_api.client import GraphError, GraphUnreachable
from kaanha.whatsapp.cloud_api.errors import rule_for
from kaanha.whatsapp.cloud_api.provider import graph_client
from kaanha.whatsapp.inbound import process_payload, split_payload
from kaanha.whatsapp.jobs import FETCH_MEDIA_JOB, INBOUND_EVENT_JOB, MARK_READ_JOB
from kaanha.whatsapp.provider import ProviderError
from kaanha.whatsapp.providers import provider_for
from kaanha.worker.runner import Lease, PermanentFailure, RetryLater, stepwise_task, task

logger = logging.getLogger("kaanha.whatsapp")

# Meta's largest media (documents) are 100 MB.
MAX_INBOUND_MEDIA_BYTES = 100 * MB


async def _give_up_event(session: AsyncSession, _runtime: Runtime, job: Job, error: Exception) -> None:
    """A payload that can't be applied (a bug of ours) is set aside, so it blocks nothing that waits on it."""
    logger.error("webhook event %s could not be applied and was set aside: %s", job.payload.get("eventId"), error)
    await session.execute(
        update(InboundEvent).where(InboundEvent.id == job.payload.get("eventId")).values(processed_at=now())
    )


async def _give_up_media(session: AsyncSession, _runtime: Runtime, job: Job, error: Exception) -> None:
    message = await MessageRepository(session, job.organization_id or "").find(job.payload.get("messageId", ""))
    if message is not None and not message.content.get("mediaId"):
        content = {**message.content, "mediaError": "The file could not be fetched from WhatsApp; try again later"}
        await session.execute(update(Message).where(Message.id == message.id).values(content=content))


# Messages or statuses applied per transaction (see split_payload).
ITEMS_PER_TRANSACTION = 10


@stepwise_task(INBOUND_EVENT_JOB, on_give_up=_give_up_event)
async def process_inbound_event(runtime: Runtime, job: Job, lease: Lease) -> None:
    """Apply a stored webhook a few items per transaction, then mark it processed.

    A crash part-way runs the job again from the start; what was applied is skipped as a duplicate.
    `processed_at` comes last: a send in doubt waits for it to know every answer Meta gave is in.
    """
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        event = await session.get(InboundEvent, job.payload["eventId"])
        if event is None or event.processed_at is not None:
            return
        payload = event.payload
    signers = job.payload.get("organizations")
    organizations = set(signers) if isinstance(signers, list) else None
    unrouted = rejected = 0
    for part in split_payload(payload, items_per_part=ITEMS_PER_TRANSACTION):
        # The lease is renewed first: on SQLite that write takes the lock before any savepoint.
        async with runtime.database.transaction() as session:
            await lease.hold(session)
            summary = await process_payload(session, part, organizations=organizations)
        unrouted, rejected = unrouted + summary.unrouted, rejected + summary.rejected
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        await session.execute(update(InboundEvent).where(InboundEvent.id == event.id).values(processed_at=now()))
    if unrouted or rejected:
        logger.warning(
            "event %s: %s change(s) for numbers no organization has, %s message(s) rejected",
            event.id,
            unrouted,
            rejected,
        )


@task(MARK_READ_JOB)
async def send_read_receipt(session: AsyncSession, runtime: Runtime, job: Job) -> None:
    connection = await get_connection(session, job.organization_id or "")
    try:
        await provider_for(connection, runtime).mark_read(job.payload["whatsappMessageId"])
    except ProviderError as error:
        if error.retryable:
            raise RetryLater(str(error), delay=error.retry_after) from error
        raise PermanentFailure(str(error)) from error


@stepwise_task(FETCH_MEDIA_JOB, on_give_up=_give_up_media)
async def fetch_inbound_media(runtime: Runtime, job: Job, lease: Lease) -> None:
    """Meta's media id -> a 5-minute URL -> the bytes, into our store, so /api/media serves them."""
    organization_id = job.organization_id or ""
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        message = await MessageRepository(session, organization_id).find(job.payload["messageId"])
        if message is None or message.content.get("mediaId") or not message.content.get("providerMediaId"):
            return
        connection = await get_connection(session, organization_id)
        if connection.type != "cloud_api":
            return
        provider_media_id = str(message.content["providerMediaId"])
    client = graph_client(runtime, runtime.secret_box.decrypt(connection.access_token_encrypted or ""))
    try:
        info = await client.media_info(provider_media_id)
        blob = await runtime.media_store.save(client.download(str(info["url"])), max_bytes=MAX_INBOUND_MEDIA_BYTES)
    except (GraphUnreachable, KeyError) as error:
        raise RetryLater(f"media {provider_media_id}: {error}") from error
    except GraphError as error:
        rule = rule_for(error.code)
        if error.http_status >= 500 or (rule is not None and rule.retryable):
            raise RetryLater(str(error)) from error
        await _record_media_error(runtime, message, f"({error.code}) {error.details or error.message}")
        return
    except BlobTooLarge:
        await _record_media_error(runtime, message, f"larger than {MAX_INBOUND_MEDIA_BYTES // MB} MB")
        return
    async with runtime.database.transaction() as session:
        await _attach_media(session, message, info, sha256=blob.sha256, size=blob.size)


async def _attach_media(
    session: AsyncSession, message: Message, info: dict[str, Any], *, sha256: str, size: int
) -> None:
    content = dict(message.content)
    media = Media(
        id=new_id("med"),
        organization_id=message.organization_id,
        sha256=sha256,
        mime_type=str(content.get("mimeType") or info.get("mime_type") or "application/octet-stream")[:100],
        size=size,
        filename=clean_filename(content.get("filename")),
        created_at=now(),
    )
    session.add(media)
    await session.flush()
    content.update(mediaId=media.id, mimeType=media.mime_type)
    await session.execute(update(Message).where(Message.id == message.id).values(content=content))


async def _record_media_error(runtime: Runtime, message: Message, reason: str) -> None:
    """Media Meta no longer has (their ids expire after 7 days) stays a message, with why it has no file."""
    async with runtime.database.transaction() as session:
        content = {**message.content, "mediaError": f"The file could not be fetched from WhatsApp: {reason}"}
        await session.execute(update(Message).where(Message.id == message.id).values(content=content))

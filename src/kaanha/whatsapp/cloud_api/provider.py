"""The Cloud API provider: our messages as Graph API requests, sent paced, with Meta's errors classified."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.phone import wa_id
from kaanha.media.repository import MediaRepository
from kaanha.models import ProviderMedia, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.cloud_api.bodies import mark_read_body, media_to_upload, message_body
from kaanha.whatsapp.cloud_api.client import GraphClient, GraphError, GraphUnreachable
from kaanha.whatsapp.cloud_api.errors import provider_error
from kaanha.whatsapp.provider import Outbound, PreparedSend, ProviderError, SendResult

# Meta keeps uploaded media 30 days; reuse its id a little less long so it never expires mid-send.
MEDIA_ID_LIFETIME = timedelta(days=29)
_UploadKey = tuple[str, str, str]
_UPLOAD_LOCKS: dict[_UploadKey, asyncio.Lock] = {}
# Uploads of the last minutes, by (organization, media, number): seen before their rows commit.
_RECENT_UPLOADS: dict[_UploadKey, tuple[str, datetime]] = {}


def graph_client(runtime: Runtime, access_token: str) -> GraphClient:
    settings = runtime.settings
    return GraphClient(
        runtime.http, base_url=settings.graph_api_url, version=settings.graph_api_version, access_token=access_token
    )


class CloudApiProvider:
    def __init__(self, runtime: Runtime, connection: WhatsAppConnection, *, pair_limit_hits: int = 0) -> None:
        token = runtime.secret_box.decrypt(connection.access_token_encrypted or "")
        self.runtime = runtime
        self.client = graph_client(runtime, token)
        self.phone_number_id = connection.phone_number_id or ""
        self.per_second = connection.messages_per_second or runtime.settings.cloud_api.messages_per_second
        self.pair_limit_hits = pair_limit_hits

    async def prepare(self, session: AsyncSession, outbound: Outbound) -> PreparedSend:
        message = outbound.message
        media_ids = {
            media_id: await self._meta_media_id(session, message.organization_id, media_id)
            for media_id in media_to_upload(message.type, message.content)
        }
        body = message_body(
            message.type,
            message.content,
            to=wa_id(outbound.contact.phone),
            reply_to_wamid=outbound.reply_to_whatsapp_id,
            callback_data=message.id,  # echoed in status webhooks: how an unconfirmed send is recognised
            media_ids=media_ids,
        )
        return PreparedSend(body=body)

    async def pace(self) -> None:
        await self.runtime.pacer.acquire(self.phone_number_id, self.per_second)

    async def dispatch(self, prepared: PreparedSend) -> SendResult:
        try:
            answer = await self.client.send(self.phone_number_id, prepared.body)
        except GraphUnreachable as error:
            raise ProviderError(
                0,
                f"No answer from the Graph API: {error}",
                retryable=True,
                explanation="Meta did not answer in time",
                in_doubt=error.may_have_arrived,
            ) from error
        except GraphError as error:
            raise provider_error(error, pair_limit_hits=self.pair_limit_hits) from error
        try:
            return SendResult(whatsapp_message_id=str(answer["messages"][0]["id"]))
        except (KeyError, IndexError, TypeError) as error:
            raise ProviderError(
                0, "The Graph API accepted the message without an id", retryable=True, in_doubt=True
            ) from error

    async def mark_read(self, whatsapp_message_id: str, *, typing: bool = False) -> None:
        try:
            await self.client.send(self.phone_number_id, mark_read_body(whatsapp_message_id, typing=typing))
        except (GraphError, GraphUnreachable) as error:
            raise provider_error(error) from error

    async def _meta_media_id(self, session: AsyncSession, organization_id: str, media_id: str) -> str:
        """Meta's id for one of our media files: uploaded once per number, reused until it expires.

        Sends of one file run side by side (a broadcast with an image): in this process they take
        turns, and the first upload's id is remembered before its row commits.
        """
        key = (organization_id, media_id, self.phone_number_id)
        async with _UPLOAD_LOCKS.setdefault(key, asyncio.Lock()):
            remembered = _RECENT_UPLOADS.get(key)
            if remembered is not None and remembered[1] > now():
                return remembered[0]
            meta_id = await self._upload_unless_cached(session, organization_id, media_id)
            _RECENT_UPLOADS[key] = (meta_id, now() + timedelta(minutes=10))
            if len(_RECENT_UPLOADS) > 10_000:
                _RECENT_UPLOADS.pop(next(iter(_RECENT_UPLOADS)))
        _UPLOAD_LOCKS.pop(key, None)
        return meta_id

    async def _upload_unless_cached(self, session: AsyncSession, organization_id: str, media_id: str) -> str:
        cached = await session.scalar(
            select(ProviderMedia).where(
                ProviderMedia.organization_id == organization_id,
                ProviderMedia.media_id == media_id,
                ProviderMedia.phone_number_id == self.phone_number_id,
            )
        )
        if cached is not None and cached.expires_at > now():
            return cached.provider_media_id
        media = await MediaRepository(session, organization_id).get(media_id)
        data = await asyncio.to_thread(self.runtime.media_store.path_for(media.sha256).read_bytes)
        try:
            meta_id = await self.client.upload_media(
                self.phone_number_id, data=data, mime_type=media.mime_type, filename=media.filename or media.id
            )
        except (GraphError, GraphUnreachable) as error:
            raise provider_error(error) from error
        if cached is None:
            cached = ProviderMedia(
                id=new_id("pmd"),
                organization_id=organization_id,
                media_id=media_id,
                phone_number_id=self.phone_number_id,
            )
            session.add(cached)
        cached.provider_media_id = meta_id
        cached.expires_at = now() + MEDIA_ID_LIFETIME  # written at commit: no lock during other uploads
        return meta_id

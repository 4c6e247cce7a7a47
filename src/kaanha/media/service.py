"""Media rules: uploads sniffed and limited, bytes stored once by hash, metadata per organization."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import PayloadTooLarge, UnsupportedMediaType
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.media.repository import MediaRepository
from kaanha.media.rules import ACCEPTED_UPLOADS, MB, sniff_mime_type
from kaanha.media.schemas import MediaOut
from kaanha.media.storage import BlobTooLarge, MediaStore
from kaanha.models import Media

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f/\\\"]")


class MediaTooLarge(PayloadTooLarge):
    code = "media_too_large"


class MediaTypeNotSupported(UnsupportedMediaType):
    code = "unsupported_media_type"


def media_out(media: Media) -> MediaOut:
    return MediaOut(
        media_id=media.id,
        mime_type=media.mime_type,
        size=media.size,
        filename=media.filename,
        sha256=media.sha256,
        url=f"/api/media/{media.id}",
        created_at=media.created_at,
    )


def clean_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    name = _UNSAFE_FILENAME.sub("_", filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()
    return name[:240] or None


async def store_upload(
    session: AsyncSession,
    *,
    organization_id: str,
    store: MediaStore,
    chunks: AsyncIterator[bytes],
    filename: str | None,
    max_bytes: int,
) -> MediaOut:
    """Store an upload after checking what it really is; 413 past `max_bytes`, 415 for other types."""
    sniffed: list[str] = []

    def accept(head: bytes) -> None:
        mime_type = sniff_mime_type(head)
        if mime_type not in ACCEPTED_UPLOADS:
            accepted = ", ".join(ACCEPTED_UPLOADS.values())
            found = f" (it looks like {mime_type})" if mime_type else ""
            raise MediaTypeNotSupported(f"Unsupported file type{found}; accepted: {accepted}")
        sniffed.append(mime_type)

    try:
        blob = await store.save(chunks, max_bytes=max_bytes, inspect=accept)
    except BlobTooLarge:
        raise MediaTooLarge(f"The file is larger than the {max_bytes // MB} MB upload limit") from None
    mime_type = sniffed[0]
    media = MediaRepository(session, organization_id).add(
        Media(
            id=new_id("med"),
            sha256=blob.sha256,
            mime_type=mime_type,
            size=blob.size,
            filename=clean_filename(filename),
            created_at=now(),
        )
    )
    await session.flush()
    return media_out(media)


async def get_media(session: AsyncSession, *, organization_id: str, media_id: str) -> Media:
    return await MediaRepository(session, organization_id).get(media_id)

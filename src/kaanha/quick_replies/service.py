"""Quick reply rules: what a saved answer may hold, and how it becomes a message for one contact."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.contacts.fields import check_fields, render
from kaanha.errors import InvalidRequest
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.media.repository import MediaRepository
from kaanha.media.rules import SEND_RULES, check_sendable
from kaanha.messages.content import CAPTION_LIMIT
from kaanha.models import Contact, Media, QuickReply
from kaanha.quick_replies.repository import DuplicateShortcut, QuickReplyRepository
from kaanha.quick_replies.schemas import (
    QuickReplyCreate,
    QuickReplyOut,
    QuickReplyUpdate,
    normalize_shortcut,
    quick_reply_out,
)


class InvalidQuickReply(InvalidRequest):
    code = "invalid_quick_reply"


class QuickReplyFieldMissing(InvalidRequest):
    code = "contact_field_missing"


@dataclass(frozen=True)
class RenderedQuickReply:
    """A quick reply filled in for one contact, as the fields of a `POST /send` of `type`."""

    shortcut: str
    type: str
    text: str
    media_id: str | None
    filename: str | None


def media_message_type(media: Media) -> str:
    """The message type that carries this media (WhatsApp decides by MIME type, not by file name)."""
    for message_type, (mime_types, _limit) in SEND_RULES.items():
        if media.mime_type in mime_types:
            return message_type
    raise InvalidQuickReply(
        f"Media {media.id} is {media.mime_type}, which WhatsApp doesn't send as a message; "
        "use a JPEG/PNG image, an MP4 video, MP3/OGG audio or a PDF/DOCX document"
    )


async def _media_types(session: AsyncSession, quick_replies: list[QuickReply]) -> dict[str, str]:
    ids = {row.media_id for row in quick_replies if row.media_id}
    if not ids:
        return {}
    media = await session.scalars(select(Media).where(Media.id.in_(ids)))
    return {row.id: media_message_type(row) for row in media}


async def _out(session: AsyncSession, quick_reply: QuickReply) -> QuickReplyOut:
    types = await _media_types(session, [quick_reply])
    return quick_reply_out(quick_reply, message_type=types.get(quick_reply.media_id or "", "text"))


async def _check_content(session: AsyncSession, organization_id: str, *, text: str, media_id: str | None) -> None:
    """Refuse what couldn't be sent later: no text and no media, a caption too long, audio with a caption."""
    check_fields(text, where="text")
    if media_id is None:
        if not text.strip():
            raise InvalidQuickReply("A quick reply needs 'text', 'mediaId' or both")
        return
    media = await MediaRepository(session, organization_id).get(media_id)
    message_type = media_message_type(media)
    check_sendable(message_type, mime_type=media.mime_type, size=media.size)
    if message_type == "document" and not media.filename:
        raise InvalidQuickReply("WhatsApp shows a document by its file name: upload this document with one")
    if message_type == "audio" and text.strip():
        raise InvalidQuickReply("WhatsApp audio messages have no caption: leave 'text' empty for an audio quick reply")
    if len(text) > CAPTION_LIMIT:
        raise InvalidQuickReply(
            f"text is {len(text)} characters; with media it is the caption, and WhatsApp allows at most {CAPTION_LIMIT}"
        )


async def _flush_unique(session: AsyncSession, shortcut: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise DuplicateShortcut(f"The shortcut /{shortcut} is already taken; choose another") from None


async def list_quick_replies(
    session: AsyncSession, *, organization_id: str, search: str | None, page: PageRequest
) -> Page[QuickReplyOut]:
    repository = QuickReplyRepository(session, organization_id)
    rows, total = await repository.page(repository.listing(search=search), page)
    types = await _media_types(session, rows)
    data = [quick_reply_out(row, message_type=types.get(row.media_id or "", "text")) for row in rows]
    return Page.of(data, request=page, total=total)


async def get_quick_reply(session: AsyncSession, *, organization_id: str, quick_reply_id: str) -> QuickReplyOut:
    return await _out(session, await QuickReplyRepository(session, organization_id).get(quick_reply_id))


async def create_quick_reply(session: AsyncSession, *, organization_id: str, data: QuickReplyCreate) -> QuickReplyOut:
    await _check_content(session, organization_id, text=data.text, media_id=data.media_id)
    repository = QuickReplyRepository(session, organization_id)
    quick_reply = repository.add(
        QuickReply(id=new_id("qr"), shortcut=data.shortcut, text=data.text, media_id=data.media_id)
    )
    await _flush_unique(session, data.shortcut)
    return await _out(session, quick_reply)


async def update_quick_reply(
    session: AsyncSession, *, organization_id: str, quick_reply_id: str, data: QuickReplyUpdate
) -> QuickReplyOut:
    """Change the fields present; the result is checked as a whole, so it stays sendable."""
    quick_reply = await QuickReplyRepository(session, organization_id).get(quick_reply_id)
    fields = data.model_fields_set
    text = data.text if "text" in fields and data.text is not None else quick_reply.text
    media_id = data.media_id if "media_id" in fields else quick_reply.media_id
    await _check_content(session, organization_id, text=text, media_id=media_id)
    if "shortcut" in fields and data.shortcut is not None:
        quick_reply.shortcut = data.shortcut
    quick_reply.text = text
    quick_reply.media_id = media_id
    quick_reply.updated_at = now()
    await _flush_unique(session, quick_reply.shortcut)
    return await _out(session, quick_reply)


async def delete_quick_reply(session: AsyncSession, *, organization_id: str, quick_reply_id: str) -> None:
    quick_reply = await QuickReplyRepository(session, organization_id).get(quick_reply_id)
    await session.delete(quick_reply)
    await session.flush()


async def render_for_contact(
    session: AsyncSession, *, organization_id: str, shortcut: str, contact: Contact
) -> RenderedQuickReply:
    """The quick reply `/shortcut` filled in for `contact`, ready to send.

    A field the contact has no value for and that has no fallback is refused rather than sent as a
    gap ("Hi , ..."): the error names the field, so a fallback can be added.
    """
    repository = QuickReplyRepository(session, organization_id)
    name = normalize_shortcut(shortcut)
    quick_reply = await repository.find_by_shortcut(name)
    if quick_reply is None:
        raise repository.not_found(f"No quick reply has the shortcut /{name}")
    rendered = render(quick_reply.text, contact)
    if rendered.missing:
        fields = ", ".join(sorted(set(rendered.missing)))
        raise QuickReplyFieldMissing(
            f"Quick reply /{name} uses {fields}, which this contact doesn't have; "
            "give it a fallback such as {{contact.name|there}}"
        )
    if quick_reply.media_id is None:
        return RenderedQuickReply(name, "text", rendered.text, None, None)
    media = await MediaRepository(session, organization_id).get(quick_reply.media_id)
    return RenderedQuickReply(name, media_message_type(media), rendered.text, media.id, media.filename)

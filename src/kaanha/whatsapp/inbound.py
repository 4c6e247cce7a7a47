"""The inbound pipeline: Meta-shaped webhook payloads (from Meta or the sandbox) into messages and statuses.

Every entry, change, message and status of a payload is handled; unknown message types are kept as
`unsupported` and unknown fields ignored, because WhatsApp adds both over time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.database import is_transient
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.phone import from_wa_id
from kaanha.media.repository import MediaRepository
from kaanha.messages.repository import MessageRepository
from kaanha.messages.service import record_inbound
from kaanha.messages.status import PROVIDER_STATUS, advance_status
from kaanha.models import Message, Template, WhatsAppConnection
from kaanha.templates.schemas import template_out
from kaanha.whatsapp.cloud_api.errors import explain
from kaanha.whatsapp.jobs import FETCH_MEDIA_JOB
from kaanha.worker.queue import enqueue

logger = logging.getLogger("kaanha.inbound")

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# The error message of a send we gave up on without knowing whether Meta had it (messages.tasks).
UNCONFIRMED = "Unconfirmed send"
TEMPLATE_FIELDS = ("message_template_status_update", "message_template_quality_update", "template_category_update")


@dataclass
class InboundSummary:
    messages: list[Message] = field(default_factory=list)
    duplicates: int = 0
    statuses: int = 0
    template_events: int = 0
    rejected: int = 0
    unrouted: int = 0


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return now()


def _media_content(kind: str, media: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {"providerMediaId": media.get("id"), "mimeType": media.get("mime_type")}
    for source, target in (("sha256", "sha256"), ("caption", "caption"), ("filename", "filename")):
        if media.get(source):
            content[target] = media[source]
    if kind == "audio" and "voice" in media:
        content["voice"] = bool(media["voice"])
    if kind == "sticker" and "animated" in media:
        content["animated"] = bool(media["animated"])
    return content


def _interactive_content(interactive: dict[str, Any]) -> dict[str, Any]:
    kind = interactive.get("type", "")
    found = interactive.get(kind)
    reply: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "nfm_reply":
        raw = reply.get("response_json")
        try:
            response = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            response = raw
        return {
            "interactive": {
                "type": "flow_reply",
                "name": reply.get("name"),
                "body": reply.get("body"),
                "response": response,
            }
        }
    return {
        "interactive": {
            "type": kind,
            "id": reply.get("id"),
            "title": reply.get("title"),
            **({"description": reply["description"]} if reply.get("description") else {}),
        }
    }


def parse_message(raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Our (type, content) for one of Meta's inbound message objects."""
    kind = str(raw.get("type", "unsupported"))
    found = raw.get(kind)
    body: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "text":
        message_type, content = "text", {"text": body.get("body", "")}
    elif kind in MEDIA_KINDS:
        message_type, content = kind, _media_content(kind, body)
    elif kind == "location":
        message_type = "location"
        content = {key: body[key] for key in ("latitude", "longitude", "name", "address", "url") if key in body}
    elif kind == "contacts":
        message_type, content = "contact", {"contacts": raw.get("contacts", [])}
    elif kind == "button":
        message_type, content = "button", {"text": body.get("text"), "payload": body.get("payload")}
    elif kind == "interactive":
        message_type, content = "interactive", _interactive_content(body)
    elif kind == "reaction":
        emoji = body.get("emoji") or ""
        message_type = "reaction"
        content = {"whatsappMessageId": body.get("message_id"), "emoji": emoji, "removed": not emoji}
    elif kind == "order":
        message_type = "order"
        content = {
            "order": {
                "catalogId": body.get("catalog_id"),
                "text": body.get("text"),
                "productItems": body.get("product_items", []),
            }
        }
    elif kind == "system":
        message_type = "system"
        content = {"system": {"type": body.get("type"), "body": body.get("body"), "waId": body.get("wa_id")}}
    elif kind == "revoke":
        message_type, content = "revoke", {"whatsappMessageId": body.get("original_message_id")}
    elif kind == "edit":
        message_type = "edit"
        content = {"whatsappMessageId": body.get("original_message_id"), "message": body.get("message")}
    else:
        message_type = "unsupported"
        content = {"originalType": kind, "errors": raw.get("errors", [])}
    context = _dict(raw.get("context"))
    if context.get("forwarded"):
        content["forwarded"] = True
    if context.get("frequently_forwarded"):
        content["frequentlyForwarded"] = True
    if context.get("referred_product"):
        content["referredProduct"] = context["referred_product"]
    if raw.get("referral"):
        content["referral"] = raw["referral"]
    return message_type, content


async def _connection_for(
    session: AsyncSession, phone_number_id: str | None, cache: dict[str, WhatsAppConnection | None]
) -> WhatsAppConnection | None:
    if not phone_number_id:
        return None
    if phone_number_id not in cache:
        cache[phone_number_id] = await session.scalar(
            select(WhatsAppConnection).where(WhatsAppConnection.phone_number_id == phone_number_id)
        )
    return cache[phone_number_id]


def split_payload(payload: dict[str, Any], *, items_per_part: int) -> list[dict[str, Any]]:
    """The payload as parts of at most `items_per_part` messages or statuses each, same envelope.

    Applying a part per transaction keeps each transaction short, so taking a webhook (which must
    answer within Meta's bounds) never waits long behind one being applied. Parts may be applied
    again safely: messages are deduplicated by their WhatsApp id and statuses only move forward.
    """
    parts: list[dict[str, Any]] = []
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            items = [("messages", item) for item in _objects(value.get("messages"))]
            items += [("statuses", item) for item in _objects(value.get("statuses"))]
            if len(items) <= items_per_part:
                parts.append(_part(payload, entry, change, value))
                continue
            for start in range(0, len(items), items_per_part):
                chunk = items[start : start + items_per_part]
                subset = {
                    **value,
                    "messages": [item for key, item in chunk if key == "messages"],
                    "statuses": [item for key, item in chunk if key == "statuses"],
                }
                parts.append(_part(payload, entry, change, subset))
    return parts


def _part(payload: dict[str, Any], entry: dict[str, Any], change: dict[str, Any], value: Any) -> dict[str, Any]:
    return {**payload, "entry": [{**entry, "changes": [{**change, "value": value}]}]}


async def process_payload(
    session: AsyncSession, payload: dict[str, Any], *, organizations: set[str] | None = None
) -> InboundSummary:
    """Apply one webhook payload: route each change by its phone number id, then store what it says.

    `organizations`, when given, are the only ones the payload may touch: those whose app secret
    signed it. A change routed anywhere else is dropped, so no tenant can write into another's data.
    """
    summary = InboundSummary()
    routes: dict[str, WhatsAppConnection | None] = {}
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            found = change.get("value")
            value: dict[str, Any] = found if isinstance(found, dict) else {}
            if change.get("field") in TEMPLATE_FIELDS:
                await _apply_template_event(
                    session, str(entry.get("id") or ""), str(change["field"]), value, summary, organizations
                )
                continue
            if change.get("field") != "messages":
                continue  # account and quality events join with the features that use them
            connection = await _connection_for(
                session, _text(_dict(value.get("metadata")).get("phone_number_id")), routes
            )
            if connection is None or (organizations is not None and connection.organization_id not in organizations):
                summary.unrouted += 1
                logger.warning("webhook change for an unknown phone number id was ignored")
                continue
            await _apply_messages(session, connection, value, summary)
            await _apply_statuses(session, connection.organization_id, value, summary)
    return summary


class _AlreadyStored(Exception):
    """This message was stored before, or by a concurrent copy of the webhook a moment ago."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = 1000) -> str | None:
    """A string field of a payload, or None; anything else Meta never sends is not stored."""
    return value[:limit] if isinstance(value, str) and value else None


def _error_code(value: Any) -> int | None:
    # Meta's codes are small; anything outside a 32-bit column is not one of them.
    return value if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31 else None


# WhatsApp ids and phone numbers are far shorter; longer ones are not Meta's and are skipped.
MAX_ID_LENGTH = 200
MAX_WA_ID_LENGTH = 32


def _objects(value: Any) -> list[dict[str, Any]]:
    """The dicts of a list from a payload; anything else there is ignored, never a crash."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


async def _apply_messages(
    session: AsyncSession, connection: WhatsAppConnection, value: dict[str, Any], summary: InboundSummary
) -> None:
    # An empty profile name (Meta, or the sandbox without `name`) is no name: leave the contact's null.
    names = {c.get("wa_id"): _text(_dict(c.get("profile")).get("name"), 200) for c in _objects(value.get("contacts"))}
    # In sender order (stable, so one sender's messages keep theirs): concurrent batches then take
    # the contact and conversation locks in the same order and cannot deadlock one another.
    for raw in sorted(_objects(value.get("messages")), key=lambda message: str(message.get("from") or "")):
        sender, wamid = str(raw.get("from") or ""), str(raw.get("id") or "")
        if not sender or len(sender) > MAX_WA_ID_LENGTH or not wamid or len(wamid) > MAX_ID_LENGTH:
            summary.rejected += 1
            continue
        try:
            # One odd message must not cost the others of the batch: each is applied in a savepoint.
            async with session.begin_nested():
                await _apply_message(session, connection, raw, sender, wamid, names.get(sender), summary)
        except _AlreadyStored:
            summary.duplicates += 1  # its savepoint undid what this copy touched (the unread count)
        except Exception as error:
            if is_transient(error):
                raise  # the message was fine and the database busy: the whole job runs again
            logger.exception("inbound message %s could not be stored; the rest of the batch goes on", wamid[:40])
            summary.rejected += 1


async def _apply_message(
    session: AsyncSession,
    connection: WhatsAppConnection,
    raw: dict[str, Any],
    sender: str,
    wamid: str,
    profile_name: str | None,
    summary: InboundSummary,
) -> None:
    organization_id = connection.organization_id
    message_type, content = parse_message(raw)
    if content.get("providerMediaId"):
        await _link_known_media(session, organization_id, content)
    # The message a reaction, revoke or edit is about, found first: `message.received` shows its id.
    target = None
    if message_type in ("reaction", "revoke", "edit") and content.get("whatsappMessageId"):
        target = await MessageRepository(session, organization_id).find_by_wamid(str(content["whatsappMessageId"]))
        if target is not None:
            content["messageId"] = target.id
    stored = await record_inbound(
        session,
        organization_id=organization_id,
        phone=from_wa_id(sender),
        profile_name=profile_name,
        whatsapp_message_id=wamid,
        message_type=message_type,
        content=content,
        sent_at=_timestamp(raw.get("timestamp")),
        reply_to_wamid=_text(_dict(raw.get("context")).get("id"), MAX_ID_LENGTH),
    )
    if stored is None:
        raise _AlreadyStored(wamid)
    summary.messages.append(stored)
    if message_type in ("revoke", "edit") and target is not None:
        _change_original(target, message_type, content, stored.created_at)
    if content.get("providerMediaId") and "mediaId" not in content and connection.type == "cloud_api":
        await session.flush()
        enqueue(session, kind=FETCH_MEDIA_JOB, payload={"messageId": stored.id}, organization_id=organization_id)


def _change_original(original: Message, message_type: str, content: dict[str, Any], at: datetime) -> None:
    """A customer deleted or edited an earlier message: the original shows it, as it does on their phone."""
    changed = dict(original.content)
    if message_type == "revoke":
        changed.update(deleted=True, deletedAt=at.isoformat().replace("+00:00", "Z"))
    else:
        found = content.get("message")
        edited: dict[str, Any] = found if isinstance(found, dict) else {}
        _, new_content = parse_message(edited) if edited.get("type") else ("", {})
        if "text" in new_content or "caption" in new_content:
            changed.setdefault("originalText", original.content.get("text") or original.content.get("caption"))
            changed.update({key: new_content[key] for key in ("text", "caption") if key in new_content})
        changed.update(edited=True, editedAt=at.isoformat().replace("+00:00", "Z"))
    original.content = changed


async def _link_known_media(session: AsyncSession, organization_id: str, content: dict[str, Any]) -> None:
    """Point inbound media at our store when we hold its bytes already (the sandbox sends our own ids)."""
    media = await MediaRepository(session, organization_id).find(str(content["providerMediaId"]))
    if media is not None:
        content["mediaId"] = media.id
        content["mimeType"] = media.mime_type


async def _apply_statuses(
    session: AsyncSession, organization_id: str, value: dict[str, Any], summary: InboundSummary
) -> None:
    # In message order for the same reason as messages in sender order: no deadlocks between batches.
    for raw in sorted(_objects(value.get("statuses")), key=lambda status: str(status.get("id") or "")):
        status = PROVIDER_STATUS.get(str(raw.get("status")))
        wamid = _text(raw.get("id"), MAX_ID_LENGTH + 1)
        if status is None or wamid is None or len(wamid) > MAX_ID_LENGTH:
            continue
        errors = _objects(raw.get("errors"))
        error = errors[0] if status == "failed" and errors else {}
        code = _error_code(error.get("code"))
        update_status: dict[str, Any] = {
            "status": status,
            "at": _timestamp(raw.get("timestamp")),
            "error_code": code,
            "error_message": _text(_dict(error.get("error_data")).get("details"))
            or _text(error.get("message"))
            or _text(error.get("title")),
            "error_explanation": explain(code),
        }
        moved = await advance_status(
            session, organization_id=organization_id, whatsapp_message_id=wamid, **update_status
        )
        if not moved and isinstance(raw.get("biz_opaque_callback_data"), str):
            await _adopt(session, organization_id, raw["biz_opaque_callback_data"], wamid, update_status)
        summary.statuses += 1


async def _adopt(
    session: AsyncSession, organization_id: str, message_id: str, wamid: str, update_status: dict[str, Any]
) -> None:
    """A status for a send whose answer we lost: Meta names our message, so it takes Meta's id now.

    If we had meanwhile given up on it as unconfirmed, Meta's word replaces that failure.
    """
    unconfirmed = (Message.status == "failed") & Message.error_code.is_(None) & (Message.error_message == UNCONFIRMED)
    adopted = await session.execute(
        update(Message)
        .where(
            Message.organization_id == organization_id,
            Message.id == message_id,
            Message.direction == "outbound",
            Message.whatsapp_message_id.is_(None),
        )
        .values(
            whatsapp_message_id=wamid,
            dispatched_at=None,
            status=case((unconfirmed, "queued"), else_=Message.status),
            status_rank=case((unconfirmed, 0), else_=Message.status_rank),
            error_message=case((unconfirmed, None), else_=Message.error_message),
            error_explanation=case((unconfirmed, None), else_=Message.error_explanation),
            failed_at=case((unconfirmed, None), else_=Message.failed_at),
        ),
        execution_options={"synchronize_session": False},
    )
    if adopted.rowcount == 1:  # type: ignore[attr-defined]
        logger.info("message %s confirmed by a status webhook as %s", message_id, wamid)
        await advance_status(session, organization_id=organization_id, message_id=message_id, **update_status)


async def _apply_template_event(
    session: AsyncSession,
    waba_id: str,
    field: str,
    value: dict[str, Any],
    summary: InboundSummary,
    allowed: set[str] | None,
) -> None:
    """Meta's verdicts on templates (approved, rejected, paused...), their quality and category."""
    found = await session.scalars(
        select(WhatsAppConnection.organization_id).where(WhatsAppConnection.waba_id == waba_id)
    )
    organizations = [organization_id for organization_id in found if allowed is None or organization_id in allowed]
    if not waba_id or not organizations:
        summary.unrouted += 1
        return
    changes: dict[str, Any] = {}
    if field == "message_template_status_update" and value.get("event"):
        changes["status"] = str(value["event"]).upper()[:20]
        reason = _text(value.get("reason"), 200)
        details = _text(_dict(value.get("rejection_info")).get("reason"), 200)
        changes["rejected_reason"] = (details or reason) if reason and reason != "NONE" else None
    elif field == "message_template_quality_update" and value.get("new_quality_score"):
        changes["quality_score"] = str(value["new_quality_score"])[:20]
    elif field == "template_category_update" and value.get("new_category"):
        changes["category"] = str(value["new_category"]).upper()[:20]
    if not changes:
        return
    external_id = str(value.get("message_template_id") or "")
    # Only templates this changes: Meta repeats events, and a repeat is no `template.updated`.
    differs = or_(*(getattr(Template, column).is_distinct_from(wanted) for column, wanted in changes.items()))
    for organization_id in organizations:
        query = update(Template).where(Template.organization_id == organization_id, differs)
        if external_id:
            query = query.where(Template.external_id == external_id)
        else:
            query = query.where(
                Template.name == _text(value.get("message_template_name"), 512),
                Template.language == _text(value.get("message_template_language"), 15),
            )
        changed = await session.execute(
            query.values(**changes, updated_at=now()).returning(*Template.__table__.columns),
            execution_options={"synchronize_session": False},
        )
        for row in changed.all():
            template = Template(**row._mapping)  # detached, as the row now is
            await emit(
                session, organization_id=organization_id, type=event_types.TEMPLATE_UPDATED, data=template_out(template)
            )
    summary.template_events += 1

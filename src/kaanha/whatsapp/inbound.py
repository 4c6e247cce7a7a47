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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.kit.clock import now
from kaanha.kit.phone import from_wa_id
from kaanha.media.repository import MediaRepository
from kaanha.messages.repository import MessageRepository
from kaanha.messages.service import record_inbound
from kaanha.messages.status import PROVIDER_STATUS, advance_status
from kaanha.models import Message, WhatsAppConnection

logger = logging.getLogger("kaanha.inbound")

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")


@dataclass
class InboundSummary:
    messages: list[Message] = field(default_factory=list)
    duplicates: int = 0
    statuses: int = 0
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
    context = raw.get("context") or {}
    if context.get("forwarded"):
        content["forwarded"] = True
    if context.get("frequently_forwarded"):
        content["frequentlyForwarded"] = True
    if context.get("referred_product"):
        content["referredProduct"] = context["referred_product"]
    if raw.get("referral"):
        content["referral"] = raw["referral"]
    return message_type, content


async def _organization_for(
    session: AsyncSession, phone_number_id: str | None, cache: dict[str, str | None]
) -> str | None:
    if not phone_number_id:
        return None
    if phone_number_id not in cache:
        cache[phone_number_id] = await session.scalar(
            select(WhatsAppConnection.organization_id).where(WhatsAppConnection.phone_number_id == phone_number_id)
        )
    return cache[phone_number_id]


async def process_payload(session: AsyncSession, payload: dict[str, Any]) -> InboundSummary:
    """Apply one webhook payload: route each change by its phone number id, then store what it says."""
    summary = InboundSummary()
    routes: dict[str, str | None] = {}
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") != "messages":
                continue  # template and account events join with their features
            organization_id = await _organization_for(
                session, (value.get("metadata") or {}).get("phone_number_id"), routes
            )
            if organization_id is None:
                summary.unrouted += 1
                logger.warning("webhook change for an unknown phone number id was ignored")
                continue
            await _apply_messages(session, organization_id, value, summary)
            await _apply_statuses(session, organization_id, value, summary)
    return summary


async def _apply_messages(
    session: AsyncSession, organization_id: str, value: dict[str, Any], summary: InboundSummary
) -> None:
    # An empty profile name (Meta, or the sandbox without `name`) is no name: leave the contact's null.
    names = {c.get("wa_id"): (c.get("profile") or {}).get("name") or None for c in value.get("contacts") or []}
    for raw in value.get("messages") or []:
        sender = str(raw.get("from") or "")
        if not sender or not raw.get("id"):
            continue
        message_type, content = parse_message(raw)
        if content.get("providerMediaId"):
            await _link_known_media(session, organization_id, content)
        if message_type == "reaction" and content.get("whatsappMessageId"):
            target = await MessageRepository(session, organization_id).find_by_wamid(content["whatsappMessageId"])
            if target is not None:
                content["messageId"] = target.id
        stored = await record_inbound(
            session,
            organization_id=organization_id,
            phone=from_wa_id(sender),
            profile_name=names.get(sender),
            whatsapp_message_id=str(raw["id"]),
            message_type=message_type,
            content=content,
            sent_at=_timestamp(raw.get("timestamp")),
            reply_to_wamid=(raw.get("context") or {}).get("id"),
        )
        if stored is None:
            summary.duplicates += 1
        else:
            summary.messages.append(stored)


async def _link_known_media(session: AsyncSession, organization_id: str, content: dict[str, Any]) -> None:
    """Point inbound media at our store when we hold its bytes already (the sandbox sends our own ids)."""
    media = await MediaRepository(session, organization_id).find(str(content["providerMediaId"]))
    if media is not None:
        content["mediaId"] = media.id
        content["mimeType"] = media.mime_type


async def _apply_statuses(
    session: AsyncSession, organization_id: str, value: dict[str, Any], summary: InboundSummary
) -> None:
    for raw in value.get("statuses") or []:
        status = PROVIDER_STATUS.get(str(raw.get("status")))
        if status is None or not raw.get("id"):
            continue
        error = (raw.get("errors") or [{}])[0] if status == "failed" else {}
        details = (error.get("error_data") or {}).get("details")
        await advance_status(
            session,
            organization_id=organization_id,
            whatsapp_message_id=str(raw["id"]),
            status=status,
            at=_timestamp(raw.get("timestamp")),
            error_code=error.get("code"),
            error_message=details or error.get("message") or error.get("title"),
        )
        summary.statuses += 1

"""Simulated customers: a message typed into the sandbox becomes a Meta-shaped webhook on the real pipeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.contacts.service import normalize_for_organization
from kaanha.errors import Conflict, InvalidRequest
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.phone import wa_id
from kaanha.media.repository import MediaRepository
from kaanha.messages.repository import MessageRepository
from kaanha.messages.schemas import MessageOut, message_out
from kaanha.models import InboundEvent
from kaanha.organizations.repository import get_connection
from kaanha.whatsapp.inbound import process_payload
from kaanha.whatsapp.sandbox.payloads import message_payload, new_wamid
from kaanha.whatsapp.sandbox.schemas import SandboxInbound


class NotSandbox(Conflict):
    code = "not_sandbox"


class InvalidSandboxMessage(InvalidRequest):
    code = "invalid_message"


async def _message_body(session: AsyncSession, organization_id: str, data: SandboxInbound) -> dict[str, Any]:
    kind = data.type
    if kind == "text":
        if not data.text:
            raise InvalidSandboxMessage("A text message needs 'text'")
        return {"type": "text", "text": {"body": data.text}}
    if kind in ("image", "document", "audio", "video"):
        if not data.media_id:
            raise InvalidSandboxMessage(f"An {kind} message needs 'mediaId' (upload the file with POST /media)")
        media = await MediaRepository(session, organization_id).get(data.media_id)
        body: dict[str, Any] = {"id": media.id, "mime_type": media.mime_type, "sha256": media.sha256}
        if data.caption and kind != "audio":
            body["caption"] = data.caption
        if kind == "document":
            body["filename"] = data.filename or media.filename or "document"
        return {"type": kind, kind: body}
    if kind == "location":
        if data.latitude is None or data.longitude is None:
            raise InvalidSandboxMessage("A location needs 'latitude' and 'longitude'")
        location: dict[str, Any] = {"latitude": data.latitude, "longitude": data.longitude}
        if data.text:
            location["name"] = data.text
        if data.address:
            location["address"] = data.address
        return {"type": "location", "location": location}
    if kind == "reaction":
        if not data.message_id:
            raise InvalidSandboxMessage("A reaction needs 'messageId', the message reacted to")
        target = await MessageRepository(session, organization_id).get(data.message_id)
        return {
            "type": "reaction",
            "reaction": {"message_id": target.whatsapp_message_id, "emoji": data.emoji or ""},
        }
    if not data.button_id or not data.button_title:
        raise InvalidSandboxMessage("A button_reply needs 'buttonId' and 'buttonTitle'")
    reply = {"id": data.button_id, "title": data.button_title}
    return {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": reply}}


async def receive(session: AsyncSession, *, organization_id: str, data: SandboxInbound) -> MessageOut:
    """Inject a customer's message through the same pipeline that Meta's webhooks take."""
    connection = await get_connection(session, organization_id)
    if connection.type != "sandbox":
        raise NotSandbox("This organization is connected to the Cloud API; the sandbox is not available")
    phone = await normalize_for_organization(session, organization_id=organization_id, phone=data.from_)
    message: dict[str, Any] = {"id": new_wamid(), "timestamp": str(int(now().timestamp()))}
    message.update(await _message_body(session, organization_id, data))
    if data.reply_to:
        quoted = await MessageRepository(session, organization_id).get(data.reply_to)
        message["context"] = {"from": wa_id(connection.phone_number or ""), "id": quoted.whatsapp_message_id}
    payload = message_payload(connection, sender=wa_id(phone), profile_name=data.name, message=message)
    event = InboundEvent(id=new_id("evt"), organization_id=organization_id, source="sandbox", payload=payload)
    session.add(event)
    summary = await process_payload(session, payload)
    event.processed_at = now()
    await session.flush()
    return message_out(summary.messages[0])

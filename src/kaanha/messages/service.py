"""Message rules: validating and queueing sends, recording inbound messages, listing them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from kaanha.ai_agents.triggers import on_inbound_message
from kaanha.broadcasts.replies import note_reply
from kaanha.consent.service import apply_keyword, require_marketing_consent
from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.service import ensure_contact, normalize_for_organization
from kaanha.conversations.openings import note_response
from kaanha.conversations.repository import ConversationRepository
from kaanha.conversations.service import thread_for_message, threads_for_outbound
from kaanha.conversations.window import is_window_open, require_open_window
from kaanha.errors import InvalidRequest
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.kit.urls import check_public_url
from kaanha.media.repository import MediaRepository
from kaanha.media.rules import check_sendable
from kaanha.messages.content import MEDIA_TYPES, InvalidMessage, build_content
from kaanha.messages.repository import MessageNotFound, MessageRepository
from kaanha.messages.schemas import MessageOut, SendRequest, message_out
from kaanha.messages.status import STATUS_RANK
from kaanha.models import Contact, Message
from kaanha.quick_replies.schemas import normalize_shortcut
from kaanha.quick_replies.service import render_for_contact
from kaanha.runtime import Runtime
from kaanha.templates.service import render_preview, resolve_for_send
from kaanha.worker.queue import enqueue

SEND_JOB = "messages.send"


class ReactionTargetInvalid(InvalidRequest):
    code = "invalid_reaction_target"


async def list_messages(
    session: AsyncSession, *, organization_id: str, conversation_id: str | None, page: PageRequest
) -> Page[MessageOut]:
    repository = MessageRepository(session, organization_id)
    if conversation_id:
        await ConversationRepository(session, organization_id).get(conversation_id)
    messages, total = await repository.page(repository.listing(conversation_id=conversation_id), page)
    return Page.of([message_out(m) for m in messages], request=page, total=total)


async def get_message(session: AsyncSession, *, organization_id: str, message_id: str) -> MessageOut:
    return message_out(await MessageRepository(session, organization_id).get(message_id))


async def send_message(
    session: AsyncSession,
    *,
    runtime: Runtime,
    organization_id: str,
    request: SendRequest,
    sent_by_user_id: str | None = None,
    ai_agent_id: str | None = None,
    responds: bool = True,
) -> MessageOut:
    """Validate a send against WhatsApp's rules, then store it `queued` with its send job.

    `sent_by_user_id` is the person sending, when a person is (the dashboard); API keys have none.
    `ai_agent_id` is the AI agent sending, when one is (its replies go through the same rules).
    `responds=False` for an automatic notice (a payment's thank-you) that answers nobody, so that it
    can't be the conversation's first response.

    Every check runs before anything is written: a refused send leaves no trace. The message and
    the job that will send it commit together (the outbox), so a crash can't lose or orphan either.
    """
    phone = await normalize_for_organization(session, organization_id=organization_id, phone=request.to)
    contact = await ContactRepository(session, organization_id).find_by_phone(phone)
    if request.quick_reply is not None:
        request = await _expand_quick_reply(session, organization_id, request, contact)
    content = build_content(request)
    require_open_window(contact.last_inbound_at if contact else None, message_type=request.type)
    if request.quick_reply is not None:
        content["quickReply"] = normalize_shortcut(request.quick_reply)
    content = await _resolve_references(session, runtime, organization_id, request, content)
    if content.get("category") == "MARKETING":
        require_marketing_consent(contact, phone=phone)
    conversation = (
        await ConversationRepository(session, organization_id).latest_for_contact(contact.id) if contact else None
    )
    reply_to = await _resolve_reply_to(
        session, organization_id, request.reply_to, conversation_id=conversation.id if conversation else None
    )
    if request.type == "reaction":
        content = await _resolve_reaction_target(
            session, organization_id, content, conversation_id=conversation.id if conversation else None
        )
    limiter = runtime.rate_limiter
    if runtime.settings.rate_limits.enabled:
        await limiter.check(
            limiter.parse(runtime.settings.rate_limits.per_recipient),
            "recipient",
            organization_id,
            phone,
            message=f"Too many messages to {phone}: the limit is {runtime.settings.rate_limits.per_recipient} "
            "per recipient",
        )
    return message_out(
        await _store_outbound(
            session,
            organization_id=organization_id,
            phone=phone,
            message_type=request.type,
            content=content,
            reply_to=reply_to,
            sent_by_user_id=sent_by_user_id,
            # Response times measure people: an AI agent's replies are counted as its own (analytics' aiAgents).
            responds=responds and ai_agent_id is None,
            ai_agent_id=ai_agent_id,
        )
    )


async def _expand_quick_reply(
    session: AsyncSession, organization_id: str, request: SendRequest, contact: Contact | None
) -> SendRequest:
    """The send that `quickReply` stands for: its text or media, filled in for this contact.

    The window is checked first: a quick reply is a free-form message, so a contact who hasn't
    written in 24 hours (or never) gets the window's error, not one about the reply's fields.
    """
    assert request.quick_reply is not None
    stray = request.model_fields_set - {"to", "type", "reply_to", "quick_reply"}
    if stray:
        names = ", ".join(sorted(SendRequest.model_fields[field].alias or field for field in stray))
        raise InvalidMessage(f"{names} do(es) not apply with 'quickReply': the quick reply decides the content")
    require_open_window(contact.last_inbound_at if contact else None, message_type="text")
    assert contact is not None
    reply = await render_for_contact(
        session, organization_id=organization_id, shortcut=request.quick_reply, contact=contact
    )
    fields: dict[str, Any] = {"to": request.to, "type": reply.type, "reply_to": request.reply_to}
    if reply.media_id is None:
        fields["text"] = reply.text
    else:
        fields["media_id"] = reply.media_id
        if reply.text.strip():
            fields["caption"] = reply.text
    return SendRequest.model_validate(fields).model_copy(update={"quick_reply": reply.shortcut})


async def _resolve_references(
    session: AsyncSession,
    runtime: Runtime,
    organization_id: str,
    request: SendRequest,
    content: dict[str, Any],
) -> dict[str, Any]:
    if request.type in MEDIA_TYPES:
        if request.media_id:
            media = await MediaRepository(session, organization_id).get(request.media_id)
            check_sendable(request.type, mime_type=media.mime_type, size=media.size)
            content["mimeType"] = media.mime_type
            if request.type == "document" and "filename" not in content:
                if not media.filename:
                    raise InvalidMessage("A 'document' needs a 'filename' (the upload had none)")
                content["filename"] = media.filename
        elif request.media_url:
            check_public_url(request.media_url, allow_private=runtime.settings.allow_private_urls)
    if request.type == "template":
        template = await resolve_for_send(
            session,
            organization_id=organization_id,
            name=content["templateName"],
            language=content["language"],
            components=content["components"],
        )
        content["category"] = template.category
        content["preview"] = render_preview(template, content["components"])
    return content


async def _resolve_reply_to(
    session: AsyncSession, organization_id: str, reply_to: str | None, *, conversation_id: str | None
) -> Message | None:
    if reply_to is None:
        return None
    target = await MessageRepository(session, organization_id).find_by_any_id(reply_to)
    if target is None:
        raise MessageNotFound(f"Message {reply_to} to reply to not found")
    if target.conversation_id != conversation_id:
        raise InvalidMessage(
            f"Message {reply_to} is not in this contact's conversation; replies quote their own thread"
        )
    return target


async def _resolve_reaction_target(
    session: AsyncSession, organization_id: str, content: dict[str, Any], *, conversation_id: str | None
) -> dict[str, Any]:
    target = await MessageRepository(session, organization_id).find_by_any_id(content["messageId"])
    if target is None:
        raise MessageNotFound(f"Message {content['messageId']} to react to not found")
    if target.conversation_id != conversation_id:
        raise ReactionTargetInvalid(
            f"Message {content['messageId']} is not in this contact's conversation; react to one of theirs"
        )
    if target.whatsapp_message_id is None:
        raise ReactionTargetInvalid("That message has not reached WhatsApp yet, so it can't be reacted to")
    return {**content, "messageId": target.id, "whatsappMessageId": target.whatsapp_message_id}


async def queue_broadcast_messages(
    session: AsyncSession,
    *,
    organization_id: str,
    broadcast_id: str,
    items: list[tuple[Contact, dict[str, Any]]],
) -> list[Message]:
    """Store a batch of a broadcast's template messages `queued` with their send jobs, in item order.

    What `_store_outbound` does for one message, for many with a constant number of statements: to the
    contacts the broadcast loaded (distinct, opt-in checked), each message in its contact's thread
    (opened when the contact has none, as for a single send), lastMessageAt moved forward only.
    """
    if not items:
        return []
    moment = now()
    contacts = list({contact.id: contact for contact, _ in items}.values())
    await _note_outbound_many(session, organization_id, contacts, moment)
    threads = await threads_for_outbound(session, organization_id=organization_id, contacts=contacts, at=moment)
    messages = [
        _outbound(
            organization_id=organization_id,
            conversation_id=threads[contact.id].id,
            contact_id=contact.id,
            message_type="template",
            content=content,
            reply_to=None,
            broadcast_id=broadcast_id,
            at=moment,
        )
        for contact, content in items
    ]
    session.add_all(messages)
    for message in messages:
        enqueue(session, kind=SEND_JOB, payload={"messageId": message.id}, organization_id=organization_id)
    await session.flush()
    return messages


async def _note_outbound_many(
    session: AsyncSession, organization_id: str, contacts: list[Contact], at: datetime
) -> None:
    """Move many contacts' lastMessageAt to `at` in one UPDATE, forward only (as `ensure_contact` does for one)."""
    moment = now()
    at_value = literal(at, Contact.last_message_at.type)
    await session.execute(
        update(Contact)
        .where(
            Contact.organization_id == organization_id,
            Contact.id.in_([contact.id for contact in contacts]),
            or_(Contact.last_message_at.is_(None), Contact.last_message_at < at_value),
        )
        .values(last_message_at=at_value, updated_at=moment),
        execution_options={"synchronize_session": False},
    )
    for contact in contacts:
        if contact.last_message_at is None or at > contact.last_message_at:
            set_committed_value(contact, "last_message_at", at)
            set_committed_value(contact, "updated_at", moment)


def _outbound(
    *,
    organization_id: str,
    conversation_id: str,
    contact_id: str,
    message_type: str,
    content: dict[str, Any],
    reply_to: Message | None,
    broadcast_id: str | None,
    at: datetime,
) -> Message:
    return Message(
        id=new_id("msg"),
        organization_id=organization_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        direction="outbound",
        type=message_type,
        status="queued",
        status_rank=STATUS_RANK["queued"],
        content=content,
        reply_to_id=reply_to.id if reply_to else None,
        broadcast_id=broadcast_id,
        created_at=at,
    )


async def _store_outbound(
    session: AsyncSession,
    *,
    organization_id: str,
    phone: str,
    message_type: str,
    content: dict[str, Any],
    reply_to: Message | None,
    sent_by_user_id: str | None = None,
    responds: bool = True,
    ai_agent_id: str | None = None,
) -> Message:
    """Store one message of ours `queued` with its send job.

    `responds`: whether it answers the customer, so that it can be the conversation's first response
    (analytics); an automatic confirmation answers nobody.
    """
    moment = now()
    contact = await ensure_contact(session, organization_id=organization_id, phone=phone, message_at=moment)
    conversation = await thread_for_message(
        session, organization_id=organization_id, contact=contact, inbound=False, at=moment
    )
    message = _outbound(
        organization_id=organization_id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        message_type=message_type,
        content=content,
        reply_to=reply_to,
        broadcast_id=None,
        at=moment,
    )
    message.sent_by_user_id = sent_by_user_id
    message.ai_agent_id = ai_agent_id
    MessageRepository(session, organization_id).add(message)
    await session.flush()
    if responds:
        await note_response(
            session,
            organization_id=organization_id,
            conversation_id=conversation.id,
            at=moment,
            user_id=sent_by_user_id,
        )
    enqueue(session, kind=SEND_JOB, payload={"messageId": message.id}, organization_id=organization_id)
    return message


async def record_inbound(
    session: AsyncSession,
    *,
    organization_id: str,
    phone: str,
    profile_name: str | None,
    whatsapp_message_id: str,
    message_type: str,
    content: dict[str, Any],
    sent_at: datetime,
    reply_to_wamid: str | None = None,
) -> Message | None:
    """Store a customer's message; None when this WhatsApp id was already stored (Meta retries).

    The contact is created or named, the conversation opened or reopened, and the 24-hour window
    moves to this message's time (never backwards, as webhooks may arrive out of order). Emits
    `message.received` (after the contact's and conversation's own events) with `content` as given:
    complete it before the call. A message that is an opt-out or opt-in keyword (STOP, START...)
    changes the contact's consent and queues the confirmation, once: a duplicate never gets this far.
    """
    repository = MessageRepository(session, organization_id)
    if await repository.find_by_wamid(whatsapp_message_id) is not None:
        return None
    contact = await ensure_contact(
        session,
        organization_id=organization_id,
        phone=phone,
        profile_name=profile_name,
        message_at=sent_at,
        inbound=True,
    )
    conversation = await thread_for_message(
        session, organization_id=organization_id, contact=contact, inbound=True, at=sent_at
    )
    reply_to = await repository.find_by_wamid(reply_to_wamid) if reply_to_wamid else None
    message = Message(
        id=new_id("msg"),
        conversation_id=conversation.id,
        contact_id=contact.id,
        direction="inbound",
        type=message_type,
        status="received",
        status_rank=STATUS_RANK["received"],
        content=content,
        whatsapp_message_id=whatsapp_message_id,
        reply_to_id=reply_to.id if reply_to else None,
        created_at=sent_at,
    )
    if not await repository.add_unless_taken(message):
        return None  # the same WhatsApp message, stored by a concurrent delivery of the webhook
    await note_reply(session, organization_id=organization_id, contact_id=contact.id, at=sent_at)
    await emit(session, organization_id=organization_id, type=event_types.MESSAGE_RECEIVED, data=message_out(message))
    await _answer_keyword(session, organization_id=organization_id, contact=contact, message=message)
    await on_inbound_message(
        session, organization_id=organization_id, contact=contact, conversation=conversation, message=message
    )
    return message


async def _answer_keyword(session: AsyncSession, *, organization_id: str, contact: Contact, message: Message) -> None:
    """STOP, START and the organization's own words change the contact's opt-in, and are answered.

    The confirmation is queued like any send, in this transaction: it exists exactly when the message
    that asked for it does. It goes only while the window is open (a keyword Meta delivers a day late
    still counts, but can't be answered).
    """
    reply = await apply_keyword(
        session, contact=contact, message_type=message.type, content=message.content, sent_at=message.created_at
    )
    if reply is None or not is_window_open(contact.last_inbound_at):
        return
    request = SendRequest(to=contact.phone, type="text", text=reply)
    await _store_outbound(
        session,
        organization_id=organization_id,
        phone=contact.phone,
        message_type="text",
        content=build_content(request),
        reply_to=None,
        responds=False,
    )

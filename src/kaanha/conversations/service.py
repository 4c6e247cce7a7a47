"""Conversation rules: opening and reopening threads, assignment, resolution and unread counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.service import contact_out
from kaanha.conversations.repository import ConversationRepository
from kaanha.conversations.schemas import ConversationDetail, ConversationOut, ConversationUpdate
from kaanha.conversations.window import is_window_open, window_expires_at
from kaanha.errors import InvalidRequest, NotFound
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.messages.repository import MessageRepository
from kaanha.messages.schemas import message_out
from kaanha.models import Contact, Conversation, Membership, Message, WhatsAppConnection
from kaanha.whatsapp.jobs import MARK_READ_JOB
from kaanha.worker.queue import enqueue

RECENT_MESSAGES = 50


class AssigneeNotFound(NotFound):
    code = "assignee_not_found"


class InvalidTransition(InvalidRequest):
    code = "invalid_status_change"


def conversation_out(conversation: Conversation, contact: Contact, tags: list[str]) -> ConversationOut:
    return ConversationOut(
        id=conversation.id,
        contact=contact_out(contact, tags),
        status=conversation.status,
        assignee_id=conversation.assignee_id,
        unread_count=conversation.unread_count,
        last_message_at=conversation.last_message_at,
        window_expires_at=window_expires_at(contact.last_inbound_at),
        window_open=is_window_open(contact.last_inbound_at),
        created_at=conversation.created_at,
        resolved_at=conversation.resolved_at,
    )


async def _with_contacts(
    session: AsyncSession, organization_id: str, conversations: list[Conversation]
) -> list[ConversationOut]:
    contacts = ContactRepository(session, organization_id)
    ids = list({c.contact_id for c in conversations})
    by_id = {c.id: c for c in await session.scalars(contacts.select().where(Contact.id.in_(ids)))} if ids else {}
    tags = await contacts.tags_for(ids)
    return [conversation_out(c, by_id[c.contact_id], tags.get(c.contact_id, [])) for c in conversations]


async def list_conversations(
    session: AsyncSession, *, organization_id: str, status: str | None, page: PageRequest
) -> Page[ConversationOut]:
    repository = ConversationRepository(session, organization_id)
    conversations, total = await repository.page(repository.listing(status=status), page)
    items = await _with_contacts(session, organization_id, conversations)
    return Page.of(items, request=page, total=total)


async def get_conversation(session: AsyncSession, *, organization_id: str, conversation_id: str) -> ConversationDetail:
    conversation = await ConversationRepository(session, organization_id).get(conversation_id)
    (summary,) = await _with_contacts(session, organization_id, [conversation])
    return await _detail(session, organization_id, summary)


async def _detail(session: AsyncSession, organization_id: str, summary: ConversationOut) -> ConversationDetail:
    messages = await MessageRepository(session, organization_id).recent_in_conversation(
        summary.id, limit=RECENT_MESSAGES
    )
    return ConversationDetail(**summary.model_dump(), messages=[message_out(m) for m in messages])


async def announce(session: AsyncSession, conversation: Conversation, contact: Contact, event_type: str) -> None:
    """Emit `event_type` with the conversation as `GET /chats` lists it (no messages)."""
    tags = (await ContactRepository(session, conversation.organization_id).tags_for([contact.id])).get(contact.id, [])
    await emit(
        session,
        organization_id=conversation.organization_id,
        type=event_type,
        data=conversation_out(conversation, contact, tags),
    )


async def _require_member(session: AsyncSession, organization_id: str, user_id: str) -> None:
    member = await session.scalar(
        select(Membership.id).where(Membership.organization_id == organization_id, Membership.user_id == user_id)
    )
    if member is None:
        raise AssigneeNotFound(f"No member {user_id} in this organization to assign the conversation to")


async def update_conversation(
    session: AsyncSession, *, organization_id: str, conversation_id: str, data: ConversationUpdate
) -> ConversationDetail:
    """Assign, unassign, resolve or reopen.

    Giving an assignee makes an OPEN conversation ASSIGNED; removing it makes an ASSIGNED one OPEN;
    OPEN means nobody's, so setting it clears the assignee; RESOLVED keeps who handled it.
    """
    conversation = await ConversationRepository(session, organization_id).get(conversation_id)
    before = (conversation.status, conversation.assignee_id)
    fields = data.model_fields_set
    if not fields:
        raise InvalidRequest("Nothing to change: give status and/or assigneeId")
    status = data.status if "status" in fields else None
    if "status" in fields and status is None:
        raise InvalidRequest("status cannot be null: use OPEN, ASSIGNED or RESOLVED")
    if "assignee_id" in fields:
        if data.assignee_id is not None:
            await _require_member(session, organization_id, data.assignee_id)
            if status == "OPEN":
                raise InvalidTransition("An OPEN conversation has no assignee: use status ASSIGNED or leave it out")
        conversation.assignee_id = data.assignee_id
        if status is None and conversation.status != "RESOLVED":
            status = "ASSIGNED" if data.assignee_id else "OPEN"
    if status == "ASSIGNED" and conversation.assignee_id is None:
        raise InvalidTransition("status ASSIGNED needs an assigneeId")
    if status == "OPEN":
        conversation.assignee_id = None
    if status is not None and status != conversation.status:
        await _change_status(session, conversation, status)
    conversation.updated_at = now()
    await session.flush()
    (summary,) = await _with_contacts(session, organization_id, [conversation])
    if (conversation.status, conversation.assignee_id) != before:
        await emit(session, organization_id=organization_id, type=event_types.CONVERSATION_UPDATED, data=summary)
    return await _detail(session, organization_id, summary)


async def _change_status(session: AsyncSession, conversation: Conversation, status: str) -> None:
    if conversation.status == "RESOLVED":
        # Reopening: only one unresolved thread per contact may exist.
        active = await session.scalar(
            select(Conversation.id).where(
                Conversation.organization_id == conversation.organization_id,
                Conversation.contact_id == conversation.contact_id,
                Conversation.status != "RESOLVED",
                Conversation.id != conversation.id,
            )
        )
        if active is not None:
            raise InvalidTransition(f"This contact already has an active conversation: {active}")
    conversation.status = status
    conversation.resolved_at = now() if status == "RESOLVED" else None


async def mark_read(session: AsyncSession, *, organization_id: str, conversation_id: str) -> ConversationDetail:
    conversation = await ConversationRepository(session, organization_id).get(conversation_id)
    had_unread = conversation.unread_count > 0
    conversation.unread_count = 0
    await session.flush()
    if had_unread:
        await _send_read_receipt(session, organization_id, conversation.id)
    return await get_conversation(session, organization_id=organization_id, conversation_id=conversation.id)


async def _send_read_receipt(session: AsyncSession, organization_id: str, conversation_id: str) -> None:
    """Blue ticks on the customer's phone: marking the latest message read marks the earlier ones too."""
    connection = await session.get(WhatsAppConnection, organization_id)
    if connection is None or connection.type != "cloud_api":
        return
    latest = await session.scalar(
        select(Message.whatsapp_message_id)
        .where(
            Message.organization_id == organization_id,
            Message.conversation_id == conversation_id,
            Message.direction == "inbound",
            Message.whatsapp_message_id.is_not(None),
        )
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    if latest:
        enqueue(session, kind=MARK_READ_JOB, payload={"whatsappMessageId": latest}, organization_id=organization_id)


async def thread_for_message(
    session: AsyncSession, *, organization_id: str, contact: Contact, inbound: bool, at: datetime
) -> Conversation:
    """The conversation a new message belongs to.

    The first message either way opens one. A customer's message reopens the latest resolved
    thread (back to its assignee if it had one) instead of starting another; our own messages
    join it without reopening it. Opening emits `conversation.created`, reopening
    `conversation.updated`; unread counts and lastMessageAt moving alone emit nothing.
    """
    repository = ConversationRepository(session, organization_id)
    conversation = await repository.latest_for_contact(contact.id)
    event_type = None
    if conversation is None:
        new = Conversation(id=new_id("cnv"), contact_id=contact.id, status="OPEN", unread_count=0, created_at=at)
        if await repository.add_unless_taken(new):
            conversation = new
            event_type = event_types.CONVERSATION_CREATED
        else:  # opened by a concurrent message a moment ago
            found = await repository.latest_for_contact(contact.id)
            if found is None:
                raise InvalidTransition("The conversation is being opened by another request; retry")
            conversation = found
    elif conversation.status == "RESOLVED" and inbound:
        conversation.status = "ASSIGNED" if conversation.assignee_id else "OPEN"
        conversation.resolved_at = None
        event_type = event_types.CONVERSATION_UPDATED
    if inbound:
        conversation.unread_count += 1
    conversation.last_message_at = max(filter(None, [conversation.last_message_at, at]))
    conversation.updated_at = now()
    if event_type is not None:
        await announce(session, conversation, contact, event_type)
    return conversation

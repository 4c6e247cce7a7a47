"""Conversation rules: opening and reopening threads, assignment, resolution and unread counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from kaanha.ai_agents.triggers import on_conversation_changed
from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.service import contact_out
from kaanha.conversations.openings import add_openings, new_opening, note_handling, note_inbound
from kaanha.conversations.repository import ConversationRepository
from kaanha.conversations.schemas import (
    ConversationDetail,
    ConversationHandoff,
    ConversationOut,
    ConversationUpdate,
)
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
        # Only while people have yet to take it (cleared on assignment or resolution; checked here too).
        handoff=(
            ConversationHandoff.model_validate(conversation.handoff)
            if conversation.handoff and conversation.status == "OPEN"
            else None
        ),
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
    session: AsyncSession,
    *,
    organization_id: str,
    conversation_id: str,
    data: ConversationUpdate,
    user_id: str | None = None,
) -> ConversationDetail:
    """Assign, unassign, resolve or reopen; `user_id` is the person doing it, if a person is.

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
    await note_handling(
        session,
        conversation,
        was_resolved=before[0] == "RESOLVED",
        previous_assignee_id=before[1],
        at=conversation.updated_at,
        user_id=user_id,
    )
    await session.flush()
    (summary,) = await _with_contacts(session, organization_id, [conversation])
    if (conversation.status, conversation.assignee_id) != before:
        await emit(session, organization_id=organization_id, type=event_types.CONVERSATION_UPDATED, data=summary)
        await on_conversation_changed(session, conversation)  # a person or a resolution stops its AI agent
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
    if event_type is not None:
        await add_openings(session, [new_opening(conversation, at=at, inbound=inbound)])
    elif inbound:
        await note_inbound(session, organization_id=organization_id, conversation_id=conversation.id, at=at)
    if inbound:
        conversation.unread_count += 1
    conversation.last_message_at = max(filter(None, [conversation.last_message_at, at]))
    conversation.updated_at = now()
    if event_type is not None:
        await announce(session, conversation, contact, event_type)
    return conversation


async def threads_for_outbound(
    session: AsyncSession, *, organization_id: str, contacts: list[Contact], at: datetime
) -> dict[str, Conversation]:
    """The conversation each of our messages to `contacts` (distinct) at `at` joins, by contact id.

    `thread_for_message` for outbound messages, for many contacts with a constant number of
    statements: each contact's thread is its active conversation, else its latest resolved one
    (joined, not reopened); a contact without any gets a new OPEN one and `conversation.created`.
    lastMessageAt moves forward only, and nothing else is announced.
    """
    if not contacts:
        return {}
    threads = await _latest_for_contacts(session, organization_id, [contact.id for contact in contacts])
    existing = list(threads.values())
    if existing:
        await _touch_threads(session, organization_id, existing, at)
    missing = [contact for contact in contacts if contact.id not in threads]
    if missing:
        threads.update(await _open_threads(session, organization_id, missing, at))
    return threads


async def _latest_for_contacts(
    session: AsyncSession, organization_id: str, contact_ids: list[str]
) -> dict[str, Conversation]:
    # The same choice as ConversationRepository.latest_for_contact, for every contact in one query.
    ranked = (
        select(
            Conversation.id,
            func.row_number()
            .over(
                partition_by=Conversation.contact_id,
                order_by=((Conversation.status == "RESOLVED").asc(), Conversation.created_at.desc()),
            )
            .label("rank"),
        )
        .where(Conversation.organization_id == organization_id, Conversation.contact_id.in_(contact_ids))
        .subquery()
    )
    found = await session.scalars(
        ConversationRepository(session, organization_id)
        .select()
        .join(ranked, ranked.c.id == Conversation.id)
        .where(ranked.c.rank == 1)
    )
    return {conversation.contact_id: conversation for conversation in found}


async def _touch_threads(
    session: AsyncSession, organization_id: str, conversations: list[Conversation], at: datetime
) -> None:
    """lastMessageAt to `at` unless later already (in the database, so a concurrent move is kept)."""
    moment = now()
    at_value = literal(at, Conversation.last_message_at.type)
    await session.execute(
        update(Conversation)
        .where(
            Conversation.organization_id == organization_id,
            Conversation.id.in_([conversation.id for conversation in conversations]),
        )
        .values(
            last_message_at=case(
                (or_(Conversation.last_message_at.is_(None), Conversation.last_message_at < at_value), at_value),
                else_=Conversation.last_message_at,
            ),
            updated_at=moment,
        ),
        execution_options={"synchronize_session": False},
    )
    for conversation in conversations:
        latest = max(filter(None, [conversation.last_message_at, at]))
        set_committed_value(conversation, "last_message_at", latest)
        set_committed_value(conversation, "updated_at", moment)


async def _open_threads(
    session: AsyncSession, organization_id: str, contacts: list[Contact], at: datetime
) -> dict[str, Conversation]:
    """A new OPEN conversation for each of `contacts`, announced; all in one INSERT when nothing races.

    An inbound message may open one of them concurrently (the one-active-per-contact index): then
    this insert is undone whole and each contact goes through `thread_for_message`, which copes.
    """
    moment = now()
    new = [
        Conversation(
            id=new_id("cnv"),
            organization_id=organization_id,
            contact_id=contact.id,
            status="OPEN",
            unread_count=0,
            last_message_at=at,
            created_at=at,
            updated_at=moment,
        )
        for contact in contacts
    ]
    await session.flush()
    try:
        async with session.begin_nested():
            session.add_all(new)
            await session.flush()
            await add_openings(session, [new_opening(conversation, at=at, inbound=False) for conversation in new])
    except IntegrityError:
        return {
            contact.id: await thread_for_message(
                session, organization_id=organization_id, contact=contact, inbound=False, at=at
            )
            for contact in contacts
        }
    tags = await ContactRepository(session, organization_id).tags_for([contact.id for contact in contacts])
    for conversation, contact in zip(new, contacts, strict=True):
        await emit(
            session,
            organization_id=organization_id,
            type=event_types.CONVERSATION_CREATED,
            data=conversation_out(conversation, contact, tags.get(contact.id, [])),
        )
    return {conversation.contact_id: conversation for conversation in new}

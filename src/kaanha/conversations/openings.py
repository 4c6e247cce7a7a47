"""Conversation openings kept in step with their conversation: at most one statement a change, never a read.

Analytics measures response and resolution times from these rows (models/conversation_opening.py).
Each change to a conversation touches only its open row (`resolved_at IS NULL`, a partial index) with
a conditional UPDATE, or adds a row when the conversation opens; nothing is loaded, so messages and
assignments pay one small statement. A conversation without an open row (resolved, or from before
the migration's backfill) is simply not updated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.kit.ids import new_id
from kaanha.models import Conversation, ConversationOpening

OPENINGS = cast(Table, ConversationOpening.__table__)


def new_opening(conversation: Conversation, *, at: datetime, inbound: bool) -> dict[str, Any]:
    """The row for `conversation` opening at `at` (created, or reopened), for `add_openings`.

    A customer's message that opens it is its first inbound message (and it is opened by the
    customer; anything else, by the business); a thread that reopens back to its assignee counts as
    assigned to them from that moment.
    """
    return {
        "id": new_id("cop"),
        "organization_id": conversation.organization_id,
        "conversation_id": conversation.id,
        "opened_at": at,
        "opened_by": "customer" if inbound else "business",
        "backfilled": False,
        "first_inbound_at": at if inbound else None,
        "first_response_at": None,
        "first_responder_user_id": None,
        "assigned_at": at if conversation.assignee_id else None,
        "first_assignee_id": conversation.assignee_id,
        "assignee_id": conversation.assignee_id,
        "resolved_at": None,
        "resolved_by_user_id": None,
    }


async def add_openings(session: AsyncSession, openings: list[dict[str, Any]]) -> None:
    """Insert `openings` (their conversations already written) in one statement.

    A conversation keeps one open row (a unique partial index): when two workers reopen it at once
    (two messages, or a duplicated webhook, after it was resolved), the second insert waits for the
    first and then does nothing, instead of failing or adding a second row that every later update
    would also hit and every figure count twice.
    """
    if not openings:
        return
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(OPENINGS).on_conflict_do_nothing(
        index_elements=[OPENINGS.c.organization_id, OPENINGS.c.conversation_id],
        index_where=OPENINGS.c.resolved_at.is_(None),
    )
    await session.execute(statement, openings)


def _open_row(organization_id: str, conversation_id: str) -> list[ColumnElement[bool]]:
    return [
        ConversationOpening.organization_id == organization_id,
        ConversationOpening.conversation_id == conversation_id,
        ConversationOpening.resolved_at.is_(None),
    ]


async def note_inbound(session: AsyncSession, *, organization_id: str, conversation_id: str, at: datetime) -> None:
    """The customer wrote in an open conversation: the first time in this opening starts the response clock."""
    await session.execute(
        update(ConversationOpening)
        .where(*_open_row(organization_id, conversation_id), ConversationOpening.first_inbound_at.is_(None))
        .values(first_inbound_at=at),
        execution_options={"synchronize_session": False},
    )


async def note_response(
    session: AsyncSession, *, organization_id: str, conversation_id: str, at: datetime, user_id: str | None
) -> None:
    """We wrote: the first reply after the customer's first message of this opening is its first response.

    Callers leave out what answers nobody: broadcasts, and automatic confirmations (STOP, START).
    """
    await session.execute(
        update(ConversationOpening)
        .where(
            *_open_row(organization_id, conversation_id),
            ConversationOpening.first_response_at.is_(None),
            ConversationOpening.first_inbound_at <= at,
        )
        .values(first_response_at=at, first_responder_user_id=user_id),
        execution_options={"synchronize_session": False},
    )


async def note_handling(
    session: AsyncSession,
    conversation: Conversation,
    *,
    was_resolved: bool,
    previous_assignee_id: str | None,
    at: datetime,
    user_id: str | None,
) -> None:
    """Follow a change of status or assignee: a reopening adds a row, anything else updates the open one.

    The open row's assignee follows the conversation's, `assigned_at` and `first_assignee_id` keep the
    first assignment, and a resolution freezes them with who resolved it and when.
    """
    if was_resolved:
        if conversation.status != "RESOLVED":
            await add_openings(session, [new_opening(conversation, at=at, inbound=False)])
        return
    resolving = conversation.status == "RESOLVED"
    if not resolving and conversation.assignee_id == previous_assignee_id:
        return
    values: dict[str, object] = {"assignee_id": conversation.assignee_id}
    if conversation.assignee_id is not None:
        # Set together and only once: the first assignment, credited to whom it went to.
        values["assigned_at"] = func.coalesce(
            ConversationOpening.assigned_at, literal(at, ConversationOpening.assigned_at.type)
        )
        values["first_assignee_id"] = func.coalesce(
            ConversationOpening.first_assignee_id,
            literal(conversation.assignee_id, ConversationOpening.first_assignee_id.type),
        )
    if resolving:
        values.update(resolved_at=conversation.resolved_at or at, resolved_by_user_id=user_id)
    await session.execute(
        update(ConversationOpening).where(*_open_row(conversation.organization_id, conversation.id)).values(**values),
        execution_options={"synchronize_session": False},
    )

"""Migration 0007 gives each existing conversation one opening, as far as its messages tell, marked as such."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from kaanha.database import Database
from kaanha.migrations import upgrade_database_async
from kaanha.models import Contact, Conversation, ConversationOpening, Message, Organization
from kaanha.testing.databases import scratch_postgres_database
from tests.analytics.seed import utc


@pytest.fixture
def empty_database_url(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    requested = os.environ.get("KAANHA_TEST_DATABASE_URL")
    if not requested:
        yield f"sqlite+aiosqlite:///{tmp_path}/before-0007.db"
        return
    with scratch_postgres_database(requested, prefix="kaanha_test_0007") as url:
        yield url


def _message(conversation: str, at_minute: int, direction: str, broadcast_id: str | None = None) -> dict[str, object]:
    return {
        "id": f"msg_{conversation}_{at_minute}_{direction}",
        "organization_id": "org_1",
        "conversation_id": f"cnv_{conversation}",
        "contact_id": f"ctc_{conversation}",
        "direction": direction,
        "type": "text",
        "status": "received" if direction == "inbound" else "sent",
        "status_rank": 40 if direction == "inbound" else 10,
        "content": {},
        "broadcast_id": broadcast_id,
        "created_at": utc(2026, 11, 1, 10, 0) + timedelta(minutes=at_minute),
    }


async def test_existing_conversations_get_one_opening_each(empty_database_url):
    await upgrade_database_async(empty_database_url, "0006")
    database = Database(empty_database_url)
    created = utc(2026, 11, 1, 10, 0)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(insert(Organization), [{"id": "org_1", "name": "Acme", "created_at": created}])
            await connection.execute(
                insert(Contact),
                [
                    {"id": f"ctc_{name}", "organization_id": "org_1", "phone": f"+9198765432{n}", "created_at": created}
                    for n, name in enumerate(("answered", "resolved", "ours"))
                ],
            )
            for row in (
                {"id": "cnv_answered", "contact_id": "ctc_answered", "status": "OPEN", "resolved_at": None},
                {
                    "id": "cnv_resolved",
                    "contact_id": "ctc_resolved",
                    "status": "RESOLVED",
                    "resolved_at": created + timedelta(hours=2),
                },
                {"id": "cnv_ours", "contact_id": "ctc_ours", "status": "OPEN", "resolved_at": None},
            ):
                await connection.execute(
                    insert(Conversation).values(
                        organization_id="org_1", unread_count=0, created_at=created, updated_at=created, **row
                    )
                )
            await connection.execute(
                insert(Message),
                [
                    # A broadcast before the customer wrote, the customer, a broadcast, then our reply.
                    _message("answered", 0, "outbound", broadcast_id="bc_1"),
                    _message("answered", 5, "inbound"),
                    _message("answered", 6, "outbound", broadcast_id="bc_1"),
                    _message("answered", 9, "outbound"),
                    _message("answered", 20, "outbound"),
                    _message("resolved", 1, "inbound"),
                    _message("ours", 2, "outbound"),  # the customer never wrote
                ],
            )
    finally:
        await database.dispose()

    await upgrade_database_async(empty_database_url, "head")

    database = Database(empty_database_url)
    try:
        async with database.sessions() as session:
            rows = {
                row.conversation_id.removeprefix("cnv_"): row
                for row in await session.scalars(select(ConversationOpening).order_by(ConversationOpening.id))
            }
    finally:
        await database.dispose()
    assert set(rows) == {"answered", "resolved", "ours"}
    answered, resolved, ours = rows["answered"], rows["resolved"], rows["ours"]
    assert answered.id == "cop_answered"  # the conversation's id with the opening's prefix
    assert (answered.opened_at, answered.first_inbound_at, answered.first_response_at, answered.resolved_at) == (
        created,
        created + timedelta(minutes=5),
        created + timedelta(minutes=9),
        None,
    )
    assert (resolved.first_inbound_at, resolved.first_response_at, resolved.resolved_at) == (
        created + timedelta(minutes=1),
        None,
        created + timedelta(hours=2),
    )
    assert (ours.first_inbound_at, ours.first_response_at) == (None, None)
    # Whoever wrote first opened it (a broadcast came before the customer in "answered"); every row is
    # marked as backfilled, so response and resolution times leave it out.
    assert [(row.opened_by, row.backfilled) for row in (answered, resolved, ours)] == [
        ("business", True),
        ("customer", True),
        ("business", True),
    ]

"""A small, fully known data set for the analytics tests, written straight into the tables.

Times are UTC; comments give the local time in Asia/Kolkata (+05:30), where the report is read.
The expected figures in the tests are worked out by hand from the lists below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from kaanha.database import Database
from kaanha.kit.ids import new_id
from kaanha.messages.status import STATUS_RANK
from kaanha.models import (
    Broadcast,
    BroadcastRecipient,
    Contact,
    Conversation,
    ConversationOpening,
    Membership,
    Message,
    Organization,
    User,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class People:
    asha: str  # agent A
    bilal: str  # agent B
    chitra: str  # a member with nothing in the range


class Seeder:
    def __init__(self, session, organization_id: str) -> None:  # type: ignore[no-untyped-def]
        self.session = session
        self.organization_id = organization_id
        self.contacts = 0

    async def thread(self) -> tuple[str, str]:
        """A new contact and its (resolved, so any number fit) conversation: (contact id, conversation id)."""
        self.contacts += 1
        contact = Contact(
            id=new_id("ctc"),
            organization_id=self.organization_id,
            phone=f"+9198000{self.contacts:05d}",
            attributes={},
        )
        self.session.add(contact)
        conversation = Conversation(
            id=new_id("cnv"),
            organization_id=self.organization_id,
            contact_id=contact.id,
            status="RESOLVED",
            unread_count=0,
        )
        self.session.add(conversation)
        await self.session.flush()
        return contact.id, conversation.id

    def message(
        self,
        thread: tuple[str, str],
        created_at: datetime,
        *,
        direction: str = "outbound",
        status: str = "sent",
        after_sent: bool = False,
        code: int | None = None,
        error: str | None = None,
        sent_by: str | None = None,
        broadcast_id: str | None = None,
    ) -> Message:
        """A message as the status pipeline leaves it: each stage it passed has its timestamp."""
        later = created_at + timedelta(seconds=5)
        reached_sent = status in ("sent", "delivered", "read") or (status == "failed" and after_sent)
        message = Message(
            id=new_id("msg"),
            organization_id=self.organization_id,
            contact_id=thread[0],
            conversation_id=thread[1],
            direction=direction,
            type="text",
            status=status,
            status_rank=STATUS_RANK[status],
            content={"text": "hello"},
            created_at=created_at,
            sent_at=later if reached_sent else None,
            delivered_at=later if status in ("delivered", "read") else None,
            read_at=later if status == "read" else None,
            failed_at=later if status == "failed" else None,
            error_code=code,
            error_message=error,
            sent_by_user_id=sent_by,
            broadcast_id=broadcast_id,
        )
        self.session.add(message)
        return message

    async def opening(
        self,
        opened_at: datetime,
        *,
        first_inbound_at: datetime | None = None,
        first_response_at: datetime | None = None,
        responder: str | None = None,
        assigned_at: datetime | None = None,
        assignee: str | None = None,
        first_assignee: str | None = None,
        resolved_at: datetime | None = None,
        backfilled: bool = False,
    ) -> None:
        _, conversation_id = await self.thread()
        self.session.add(
            ConversationOpening(
                id=new_id("cop"),
                organization_id=self.organization_id,
                conversation_id=conversation_id,
                opened_at=opened_at,
                opened_by="customer" if first_inbound_at == opened_at else "business",
                backfilled=backfilled,
                first_inbound_at=first_inbound_at,
                first_response_at=first_response_at,
                first_responder_user_id=responder,
                assigned_at=assigned_at,
                first_assignee_id=first_assignee or assignee,
                assignee_id=assignee,
                resolved_at=resolved_at,
            )
        )

    async def person(self, name: str, role: str = "agent") -> str:
        user = User(id=new_id("usr"), email=f"{new_id('e')}@example.com", name=name, password_hash="-")
        self.session.add(user)
        await self.session.flush()
        self.session.add(Membership(id=new_id("mem"), organization_id=self.organization_id, user_id=user.id, role=role))
        return user.id


async def set_timezone(database: Database, organization_id: str, timezone: str) -> None:
    async with database.transaction() as session:
        await session.execute(update(Organization).where(Organization.id == organization_id).values(timezone=timezone))


async def seed_kolkata_month(database: Database, organization_id: str) -> People:
    """November 2026 in an Asia/Kolkata organization (see the test module for the expected figures)."""
    async with database.transaction() as session:
        seed = Seeder(session, organization_id)
        people = People(
            asha=await seed.person("Asha Agent"),
            bilal=await seed.person("Bilal Agent"),
            chitra=await seed.person("Chitra Owner", role="owner"),
        )
        t = await seed.thread()
        # --- messages -------------------------------------------------------------------------------
        seed.message(t, utc(2026, 11, 1, 3, 0), status="read")  # 1: Nov 1 08:30
        seed.message(t, utc(2026, 11, 1, 18, 29, 59), status="delivered")  # 2: Nov 1 23:59:59
        seed.message(t, utc(2026, 11, 1, 18, 30), status="sent")  # 3: Nov 2 00:00
        seed.message(t, utc(2026, 11, 2, 5, 0), status="failed", after_sent=True, code=131026)  # 4: Nov 2
        seed.message(t, utc(2026, 11, 2, 6, 0), status="failed", code=131047)  # 5: Nov 2
        seed.message(t, utc(2026, 11, 4, 6, 0), status="failed", code=131047)  # 6: Nov 4
        seed.message(t, utc(2026, 11, 4, 7, 0), status="failed", code=999999, error="Something odd")  # 7: Nov 4
        seed.message(t, utc(2026, 11, 4, 8, 0), status="failed", error="Not sent: cancelled")  # 8: Nov 4, no code
        seed.message(t, utc(2026, 10, 31, 18, 30), direction="inbound", status="received")  # 9: Nov 1 00:00
        seed.message(t, utc(2026, 10, 31, 18, 29, 59), direction="inbound", status="received")  # 10: Oct 31
        seed.message(t, utc(2026, 11, 7, 18, 29, 59), direction="inbound", status="received")  # 11: Nov 7 23:59:59
        seed.message(t, utc(2026, 11, 7, 18, 30), direction="inbound", status="received")  # 12: Nov 8 00:00
        seed.message(t, utc(2026, 11, 5, 6, 0), status="queued")  # 13: Nov 5, not sent yet
        seed.message(t, utc(2026, 11, 3, 10, 0), status="read", sent_by=people.asha)  # 14: Nov 3
        seed.message(t, utc(2026, 11, 3, 11, 0), status="delivered", sent_by=people.asha)  # 15: Nov 3
        seed.message(t, utc(2026, 11, 6, 6, 0), status="sent", sent_by=people.bilal)  # 16: Nov 6
        # --- a broadcast started Nov 3 17:30 to 5 recipients (one skipped), and one started in October -----
        started = utc(2026, 11, 3, 12, 0)
        broadcast = Broadcast(
            id=new_id("bc"),
            organization_id=organization_id,
            name="Diwali offers",
            template_name="hello_world",
            language="en_US",
            category="MARKETING",
            components=[],
            audience={"all": True},
            status="completed",
            started_at=started,
        )
        october = Broadcast(
            id=new_id("bc"),
            organization_id=organization_id,
            name="October",
            template_name="hello_world",
            language="en_US",
            category="MARKETING",
            components=[],
            audience={"all": True},
            status="completed",
            started_at=utc(2026, 10, 30, 12, 0),
        )
        session.add_all([broadcast, october])
        await session.flush()
        for status, replied in (("read", True), ("delivered", False), ("sent", False), ("failed", False)):
            contact_id, conversation_id = await seed.thread()
            code = 131049 if status == "failed" else None
            message = seed.message(
                (contact_id, conversation_id), started, status=status, code=code, broadcast_id=broadcast.id
            )
            session.add(
                BroadcastRecipient(
                    organization_id=organization_id,
                    broadcast_id=broadcast.id,
                    contact_id=contact_id,
                    status="queued",
                    message_id=message.id,
                    queued_at=started,
                    replied_at=started + timedelta(hours=2) if replied else None,
                )
            )
        contact_id, _ = await seed.thread()
        session.add(
            BroadcastRecipient(
                organization_id=organization_id,
                broadcast_id=broadcast.id,
                contact_id=contact_id,
                status="skipped",
                skip_reason="not_opted_in",
            )
        )
        # --- conversation openings ----------------------------------------------------------------------
        # O1: Nov 1 09:30, answered by Asha in 120 s, assigned to her, resolved after 2 h (Nov 1 11:30).
        await seed.opening(
            utc(2026, 11, 1, 4, 0),
            first_inbound_at=utc(2026, 11, 1, 4, 0),
            first_response_at=utc(2026, 11, 1, 4, 2),
            responder=people.asha,
            assigned_at=utc(2026, 11, 1, 4, 1),
            assignee=people.asha,
            resolved_at=utc(2026, 11, 1, 6, 0),
        )
        # O2: Nov 2 15:30, Asha in 600 s, resolved after 24 h (Nov 3 15:30).
        await seed.opening(
            utc(2026, 11, 2, 10, 0),
            first_inbound_at=utc(2026, 11, 2, 10, 0),
            first_response_at=utc(2026, 11, 2, 10, 10),
            responder=people.asha,
            assigned_at=utc(2026, 11, 2, 10, 5),
            assignee=people.asha,
            resolved_at=utc(2026, 11, 3, 10, 0),
        )
        # O3: Nov 4 01:30 (Nov 3 in UTC), Bilal in 30 s, resolved after 6 h (Nov 4 07:30).
        await seed.opening(
            utc(2026, 11, 3, 20, 0),
            first_inbound_at=utc(2026, 11, 3, 20, 0),
            first_response_at=utc(2026, 11, 3, 20, 0, 30),
            responder=people.bilal,
            assigned_at=utc(2026, 11, 3, 20, 0, 10),
            assignee=people.bilal,
            resolved_at=utc(2026, 11, 4, 2, 0),
        )
        # O4: Nov 5 05:30, answered through the API (no person) in 3600 s, never assigned nor resolved.
        await seed.opening(
            utc(2026, 11, 5, 0, 0),
            first_inbound_at=utc(2026, 11, 5, 0, 0),
            first_response_at=utc(2026, 11, 5, 1, 0),
        )
        # O5: opened Oct 31 17:30 and assigned to Bilal then (before the range); Bilal answered after
        # 12 h (Nov 1 05:30) and it was resolved after 48 h (Nov 2 17:30).
        await seed.opening(
            utc(2026, 10, 31, 12, 0),
            first_inbound_at=utc(2026, 10, 31, 12, 0),
            first_response_at=utc(2026, 11, 1, 0, 0),
            responder=people.bilal,
            assigned_at=utc(2026, 10, 31, 13, 0),
            assignee=people.bilal,
            resolved_at=utc(2026, 11, 2, 12, 0),
        )
        # O6: Nov 6 14:30, opened by our template; the customer never wrote.
        await seed.opening(utc(2026, 11, 6, 9, 0))
        # O7: Nov 8 00:00, just after Nov 7 ends.
        await seed.opening(utc(2026, 11, 7, 18, 30), first_inbound_at=utc(2026, 11, 7, 18, 30))
    return people

"""Broadcast queries: the audience, the live counts, and recipients with their messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Broadcast, BroadcastRecipient, Contact, ContactTag, Message


class BroadcastNotFound(NotFound):
    code = "broadcast_not_found"


def audience_condition(organization_id: str, audience: dict[str, Any]) -> Any:
    """Which of the organization's contacts an audience (`{tags, contactIds, all}`) names."""
    if audience.get("all"):
        return Contact.opted_in.is_(True)
    conditions = []
    if audience.get("tags"):
        conditions.append(
            Contact.id.in_(
                select(ContactTag.contact_id).where(
                    ContactTag.organization_id == organization_id, ContactTag.tag.in_(audience["tags"])
                )
            )
        )
    if audience.get("contactIds"):
        conditions.append(Contact.id.in_(audience["contactIds"]))
    return or_(*conditions) if conditions else false()


class BroadcastRepository(TenantRepository[Broadcast]):
    model = Broadcast
    not_found = BroadcastNotFound
    noun = "Broadcast"

    async def get_for_update(self, broadcast_id: str) -> Broadcast:
        """The broadcast, locked until the transaction ends: its dispatcher and people changing its state
        (pause, resume, cancel) take turns, so neither overwrites the other's status."""
        found: Broadcast | None = await self.session.scalar(
            self.select().where(Broadcast.id == broadcast_id).with_for_update()
        )
        if found is None:
            raise BroadcastNotFound(f"Broadcast {broadcast_id} not found")
        return found

    def listing(self, *, status: str | None) -> Select[Broadcast]:
        query = self.select()
        if status:
            query = query.where(Broadcast.status == status)
        return query.order_by(Broadcast.created_at.desc(), Broadcast.id.desc())

    def audience(self, audience: dict[str, Any]) -> Select[Any]:
        return select(Contact.id).where(
            Contact.organization_id == self.organization_id, audience_condition(self.organization_id, audience)
        )

    async def audience_size(self, audience: dict[str, Any]) -> int:
        query = self.audience(audience)
        return int(await self.session.scalar(select(func.count()).select_from(query.subquery())) or 0)

    async def existing_contact_ids(self, contact_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(contact_ids), 1000):
            chunk = contact_ids[start : start + 1000]
            found.update(
                await self.session.scalars(
                    select(Contact.id).where(Contact.organization_id == self.organization_id, Contact.id.in_(chunk))
                )
            )
        return found

    def recipients(self, broadcast_id: str) -> Select[Any]:
        return select(BroadcastRecipient).where(
            BroadcastRecipient.organization_id == self.organization_id, BroadcastRecipient.broadcast_id == broadcast_id
        )


@dataclass
class RecipientTallies:
    by_status: dict[tuple[str, str | None], int] = field(default_factory=dict)
    replied: int = 0
    # Recipients whose queued message was held back (a cancel, an opt-out since): it shows as failed.
    held_back_messages: int = 0

    def count(self, status: str) -> int:
        return sum(n for (each, _reason), n in self.by_status.items() if each == status)


async def recipient_tallies(session: AsyncSession, broadcast: Broadcast) -> RecipientTallies:
    """Recipients by status and skip reason, those who replied, and those whose message was held back."""
    rows = await session.execute(
        select(
            BroadcastRecipient.status,
            BroadcastRecipient.skip_reason,
            func.count(),
            func.count(BroadcastRecipient.replied_at),
            func.count(BroadcastRecipient.message_id),
        )
        .where(
            BroadcastRecipient.organization_id == broadcast.organization_id,
            BroadcastRecipient.broadcast_id == broadcast.id,
        )
        .group_by(BroadcastRecipient.status, BroadcastRecipient.skip_reason)
    )
    tallies = RecipientTallies()
    for status, reason, count, replied, with_message in rows:
        tallies.by_status[(status, reason)] = int(count)
        tallies.replied += int(replied)
        if status in ("cancelled", "skipped"):
            tallies.held_back_messages += int(with_message)
    return tallies


async def message_tallies(session: AsyncSession, broadcast: Broadcast) -> dict[str, int]:
    """The funnel of the broadcast's messages: each stage counts those that reached it or passed it."""
    row = (
        await session.execute(
            select(
                func.count(Message.sent_at),
                func.count(Message.delivered_at),
                func.count(Message.read_at),
                func.coalesce(func.sum(case((Message.status == "failed", 1), else_=0)), 0),
                func.coalesce(func.sum(case((Message.status == "queued", 1), else_=0)), 0),
            ).where(Message.organization_id == broadcast.organization_id, Message.broadcast_id == broadcast.id)
        )
    ).one()
    return {"sent": row[0], "delivered": row[1], "read": row[2], "failed": int(row[3]), "queued": int(row[4])}


def recipients_with_messages(organization_id: str, broadcast_id: str) -> Any:
    """Recipients joined to their contact and message, for the recipients list."""
    return (
        select(BroadcastRecipient, Contact.phone, Contact.name, Message)
        .join(Contact, Contact.id == BroadcastRecipient.contact_id)
        .outerjoin(
            Message, and_(Message.id == BroadcastRecipient.message_id, Message.organization_id == organization_id)
        )
        .where(BroadcastRecipient.organization_id == organization_id, BroadcastRecipient.broadcast_id == broadcast_id)
    )


def recipient_filter(status: str) -> Any:
    if status == "replied":
        return BroadcastRecipient.replied_at.is_not(None)
    if status in ("pending", "skipped", "cancelled"):
        return BroadcastRecipient.status == status
    return and_(BroadcastRecipient.status == "queued", Message.status == status)

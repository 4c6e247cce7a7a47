"""Broadcasts: one approved template sent to an audience, and the audience's recipients one row each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class Broadcast(TenantModel):
    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_organization_id_created_at", "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    template_name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    # Copied from the template when the broadcast is created: marketing needs the contact's opt-in.
    category: Mapped[str] = mapped_column(String(20))
    # Template parameters, whose texts may name contact fields ({{contact.name|there}}).
    components: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12))
    # The audience's size: counted at creation, then the recipients written when it starts.
    total: Mapped[int | None] = mapped_column()
    # The dispatch job in charge; another job finding a different id here stops (pause, resume).
    dispatch_job_id: Mapped[str | None] = mapped_column(String(40))
    # Why Kaanha itself paused or cancelled it (a plan limit at start, repeated errors); null otherwise.
    status_reason: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    paused_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class BroadcastRecipient(TenantModel):
    """One contact of a broadcast: `pending`, then `queued` with its message, `skipped` with why, or `cancelled`.

    The move out of `pending` happens in the transaction that writes the message, so a recipient
    gets exactly one message whatever crashes.
    """

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        # The dispatcher's "next pending, in contact order" walks this index from where it stopped.
        Index("ix_broadcast_recipients_broadcast_id_status_contact_id", "broadcast_id", "status", "contact_id"),
        Index("ix_broadcast_recipients_organization_id_contact_id", "organization_id", "contact_id"),
    )

    broadcast_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[str] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(40))
    queued_at: Mapped[datetime | None] = mapped_column()
    # The contact's first message to us after the broadcast's reached them (within a week).
    replied_at: Mapped[datetime | None] = mapped_column()

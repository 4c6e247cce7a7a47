"""Conversations: one thread per contact, OPEN, ASSIGNED to a person, or RESOLVED."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class Conversation(TenantModel):
    __tablename__ = "conversations"
    __table_args__ = (
        Index(
            "ix_conversations_organization_id_status_last_message_at",
            "organization_id",
            "status",
            "last_message_at",
        ),
        Index("ix_conversations_organization_id_last_message_at", "organization_id", "last_message_at"),
        # One conversation that is not resolved per contact, enforced by the database.
        Index(
            "uq_conversations_one_active_per_contact",
            "organization_id",
            "contact_id",
            unique=True,
            sqlite_where=text("status != 'RESOLVED'"),
            postgresql_where=text("status != 'RESOLVED'"),
        ),
        Index("ix_conversations_contact_id", "contact_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="OPEN")
    assignee_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id", ondelete="SET NULL"))
    unread_count: Mapped[int] = mapped_column(default=0)
    last_message_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    # Why an AI agent handed the conversation to people ({agentId, agentName, reason, note, at}): set
    # with the handoff, cleared when a person is assigned or the conversation is resolved.
    handoff: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

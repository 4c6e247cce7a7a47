"""Messages in both directions, with their delivery status and WhatsApp id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column


class Message(TenantModel):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("organization_id", "whatsapp_message_id"),
        Index("ix_messages_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        # Analytics' failures by code and per-person counts read these few rows, not the whole range.
        Index(
            "ix_messages_organization_id_created_at_failed",
            "organization_id",
            "created_at",
            sqlite_where=text("status = 'failed'"),
            postgresql_where=text("status = 'failed'"),
        ),
        Index(
            "ix_messages_organization_id_created_at_by_person",
            "organization_id",
            "created_at",
            sqlite_where=text("sent_by_user_id IS NOT NULL"),
            postgresql_where=text("sent_by_user_id IS NOT NULL"),
        ),
        # Only broadcast messages are indexed: a broadcast's live counts read its own rows alone.
        Index(
            "ix_messages_broadcast_id_status",
            "broadcast_id",
            "status",
            sqlite_where=text("broadcast_id IS NOT NULL"),
            postgresql_where=text("broadcast_id IS NOT NULL"),
        ),
        # Only agents' messages are indexed: the per-agent counts read their own rows alone.
        Index(
            "ix_messages_ai_agent_id_created_at",
            "ai_agent_id",
            "created_at",
            sqlite_where=text("ai_agent_id IS NOT NULL"),
            postgresql_where=text("ai_agent_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(40), ForeignKey("conversations.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    # Order of `status` (queued < sent < delivered < read), so updates only move forward.
    status_rank: Mapped[int] = mapped_column(default=0)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    whatsapp_message_id: Mapped[str | None] = mapped_column(String(200))
    reply_to_id: Mapped[str | None] = mapped_column(String(40))
    broadcast_id: Mapped[str | None] = mapped_column(String(40))
    # The AI agent that wrote it; no foreign key, like broadcast_id: the history outlives the agent.
    ai_agent_id: Mapped[str | None] = mapped_column(String(40))
    # The person who sent it (dashboard sends); null for API keys, automations and inbound messages.
    # No foreign key: like broadcast_id, it is history that outlives the user's account.
    sent_by_user_id: Mapped[str | None] = mapped_column(String(40))
    # Set just before the request to Meta and cleared with its answer: still set after a crash or a
    # timeout, it means Meta may have the message, so it is not sent again blindly.
    dispatched_at: Mapped[datetime | None] = mapped_column()
    error_code: Mapped[int | None] = mapped_column()
    error_message: Mapped[str | None] = mapped_column(String(1000))
    # What to do about the error, in plain words (Meta's message says what happened, not what to do).
    error_explanation: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()

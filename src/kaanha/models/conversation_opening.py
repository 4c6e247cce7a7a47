"""Conversation openings: one row each time a thread opens, with its first response, assignment and resolution."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel


class ConversationOpening(TenantModel):
    """A conversation from its opening (created, or reopened after RESOLVED) until it is resolved.

    Analytics reads these instead of replaying messages: response and resolution times are the
    differences of its timestamps. The conversation services keep it in step with cheap conditional
    UPDATEs of the open row (`resolved_at IS NULL`). User ids are kept as history, without a foreign
    key (as messages keep `broadcast_id`): a person's figures outlive their account.
    """

    __tablename__ = "conversation_openings"
    __table_args__ = (
        Index("ix_conversation_openings_organization_id_opened_at", "organization_id", "opened_at"),
        Index("ix_conversation_openings_organization_id_assigned_at", "organization_id", "assigned_at"),
        Index("ix_conversation_openings_organization_id_first_response_at", "organization_id", "first_response_at"),
        Index("ix_conversation_openings_organization_id_resolved_at", "organization_id", "resolved_at"),
        # The hot paths (a message, an assignment, a resolution) update the conversation's open row only.
        # Unique: two workers reopening one conversation at once must leave one open row, not two that
        # every later update would hit (openings.add_openings inserts with ON CONFLICT DO NOTHING).
        Index(
            "ix_conversation_openings_organization_id_conversation_id_open",
            "organization_id",
            "conversation_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(40), ForeignKey("conversations.id", ondelete="CASCADE"))
    opened_at: Mapped[datetime] = mapped_column()
    # "customer" when their message opened it; "business" when ours did (a send, a template, a
    # broadcast) or a person reopened it.
    opened_by: Mapped[str] = mapped_column(String(10))
    # Written by migration 0007 from history, which can't tell reopenings apart: its opened_at is the
    # conversation's creation, so it stays out of response and resolution times.
    backfilled: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The customer's first message of this opening; a thread we opened (a template) has none until they write.
    first_inbound_at: Mapped[datetime | None] = mapped_column()
    # Our first message after it that is not a broadcast nor an automatic confirmation.
    first_response_at: Mapped[datetime | None] = mapped_column()
    first_responder_user_id: Mapped[str | None] = mapped_column(String(40))
    # The first assignment of this opening and whom it went to (credited with it in analytics);
    # `assignee_id` follows the conversation's until it is resolved.
    assigned_at: Mapped[datetime | None] = mapped_column()
    first_assignee_id: Mapped[str | None] = mapped_column(String(40))
    assignee_id: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by_user_id: Mapped[str | None] = mapped_column(String(40))

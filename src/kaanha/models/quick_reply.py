"""Quick replies: saved answers people send with a shortcut such as `/thanks`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class QuickReply(TenantModel):
    __tablename__ = "quick_replies"
    __table_args__ = (UniqueConstraint("organization_id", "shortcut"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Lowercase, without the leading slash people type.
    shortcut: Mapped[str] = mapped_column(String(32))
    # May hold contact fields ({{contact.name|there}}); the caption when there is media.
    text: Mapped[str] = mapped_column(String(4096), default="")
    media_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("media.id"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

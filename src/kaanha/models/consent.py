"""The history of each contact's marketing opt-in: when it changed, how, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column


class ConsentChange(TenantModel):
    __tablename__ = "consent_changes"
    __table_args__ = (Index("ix_consent_changes_contact_id_created_at", "contact_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="CASCADE"))
    opted_in: Mapped[bool] = mapped_column()
    # How it changed: api, import, keyword, dashboard...
    source: Mapped[str] = mapped_column(String(20))
    # What exactly: the keyword the customer wrote, the API key's name...
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()

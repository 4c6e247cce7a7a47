"""Customers an organization talks to, and their tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class Contact(TenantModel):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("organization_id", "phone"),
        Index("ix_contacts_organization_id_created_at", "organization_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # E.164 is at most 16 characters; room is left for the ids Meta gives users without a phone (BSUID).
    phone: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    opted_in: Mapped[bool] = mapped_column(default=False)
    opted_in_changed_at: Mapped[datetime | None] = mapped_column()
    # How the last change came (api, import, keyword...); the full story is in consent_changes.
    opted_in_source: Mapped[str | None] = mapped_column(String(20))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_message_at: Mapped[datetime | None] = mapped_column()
    # The 24-hour customer service window runs from the customer's last message to us.
    last_inbound_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ContactTag(TenantModel):
    __tablename__ = "contact_tags"
    __table_args__ = (Index("ix_contact_tags_organization_id_tag", "organization_id", "tag"),)

    contact_id: Mapped[str] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

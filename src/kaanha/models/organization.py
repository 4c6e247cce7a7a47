"""Organizations (tenants) and their WhatsApp connection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import Model, created_at_column, updated_at_column


class Organization(Model):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20), default="starter")
    default_region: Mapped[str] = mapped_column(String(2), default="IN")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Words that opt a customer out of / back into marketing, besides STOP, UNSUBSCRIBE and START.
    opt_out_keywords: Mapped[list[str]] = mapped_column(default=list)
    opt_in_keywords: Mapped[list[str]] = mapped_column(default=list)
    # The answers to those words (null: the built-in wording).
    opt_out_reply: Mapped[str | None] = mapped_column(String(1024))
    opt_in_reply: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = created_at_column()


class WhatsAppConnection(Model):
    """How an organization reaches WhatsApp: the sandbox, or Meta's Cloud API with its credentials."""

    __tablename__ = "whatsapp_connections"

    organization_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(20), default="sandbox")
    phone_number: Mapped[str | None] = mapped_column(String(32))
    business_name: Mapped[str | None] = mapped_column(String(200))
    phone_number_id: Mapped[str | None] = mapped_column(String(64), index=True)
    waba_id: Mapped[str | None] = mapped_column(String(64))
    access_token_encrypted: Mapped[str | None] = mapped_column(String(2000))
    app_secret_encrypted: Mapped[str | None] = mapped_column(String(500))
    verify_token: Mapped[str | None] = mapped_column(String(200))
    # Sends per second to Meta for this number (null: the configured default).
    messages_per_second: Mapped[int | None] = mapped_column()
    connected: Mapped[bool] = mapped_column(default=True)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    last_webhook_at: Mapped[datetime | None] = mapped_column()
    # The first send since the last webhook from Meta: if it grows old, webhooks have stopped arriving.
    awaiting_webhook_since: Mapped[datetime | None] = mapped_column()
    # When templates were last brought in from Meta (every 15 minutes on the Cloud API).
    templates_synced_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

"""Payment links: an organization's gateway settings, its links, and the gateway webhooks already applied."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class PaymentSettings(TenantModel):
    """How one organization takes payments now: its own UPI id, or its Razorpay or Stripe account.

    The gateway accounts' keys live in `payment_gateway_accounts`, one row per gateway ever set up.
    """

    __tablename__ = "payment_settings"
    __table_args__ = (UniqueConstraint("organization_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The gateway new links are made with; links keep the one they were made with.
    gateway: Mapped[str] = mapped_column(String(10), default="upi")
    upi_id: Mapped[str | None] = mapped_column(String(255))
    payee_name: Mapped[str | None] = mapped_column(String(100))
    # Tell the customer on WhatsApp when a payment arrives (only while their 24-hour window is open).
    notify_on_paid: Mapped[bool] = mapped_column(default=True)
    # The organization's own wording for that message; null is the built-in one.
    paid_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class PaymentGatewayAccount(TenantModel):
    """An organization's account at one gateway (Razorpay or Stripe): its keys and its webhook secret.

    Kept when the settings move to another gateway, so that links made on this one still have their
    paid webhooks verified and can still be cancelled there. Secrets are encrypted with the runtime's
    secret box and never returned by the API.
    """

    __tablename__ = "payment_gateway_accounts"
    __table_args__ = (UniqueConstraint("organization_id", "gateway"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(10))
    key_id: Mapped[str | None] = mapped_column(String(255))
    key_secret_encrypted: Mapped[str] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class PaymentLink(TenantModel):
    """A request for one payment from one contact; its id is the unguessable part of the public /pay/{id} URL."""

    __tablename__ = "payment_links"
    __table_args__ = (
        # GET /payment-links?status, newest first.
        Index("ix_payment_links_organization_id_status_created_at", "organization_id", "status", "created_at"),
        Index("ix_payment_links_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_payment_links_organization_id_contact_id", "organization_id", "contact_id"),
        # Gateway webhooks name the link by the gateway's own id.
        Index("ix_payment_links_organization_id_gateway_link_id", "organization_id", "gateway_link_id"),
        # The expiry sweep: created links whose time has passed, across organizations.
        Index("ix_payment_links_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # A payment is a record worth keeping when its contact is deleted.
    contact_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("contacts.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(255))
    reference: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="created")
    gateway: Mapped[str] = mapped_column(String(10))
    gateway_link_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    # UPI: who is paid, as the settings said when the link was made (a later change can't redirect it).
    payee_upi_id: Mapped[str | None] = mapped_column(String(255))
    payee_name: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()
    # The WhatsApp message that carried the link, when it was sent with `send: true`.
    message_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class PaymentGatewayEvent(TenantModel):
    """A gateway webhook event already applied: gateways retry and send duplicates, each acts once."""

    __tablename__ = "payment_gateway_events"
    __table_args__ = (UniqueConstraint("organization_id", "gateway", "event_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(10))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    payment_link_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = created_at_column()

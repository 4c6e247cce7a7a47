"""Public shapes of payment settings and payment links."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
from kaanha.models import PaymentLink
from kaanha.payment_links.money import format_amount

Gateway = Literal["upi", "razorpay", "stripe"]
PaymentLinkStatus = Literal["created", "paid", "expired", "cancelled"]

# A UPI id (VPA) is `handle@psp`: NPCI allows letters, digits, dots, hyphens and underscores before the @.
VPA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9.-]{1,63}$")
CREDENTIAL = r"^[\x21-\x7e]+$"  # printable ASCII without spaces: they travel in headers
MAX_AMOUNT = 10**12  # far above any gateway's limit; bounds what reaches the limit check


class PaymentSettingsUpdate(RequestSchema):
    """`PUT /payment-settings` replaces the settings. Secrets omitted keep their stored values on the same gateway."""

    gateway: Gateway = "upi"
    upi_id: str | None = Field(default=None, max_length=255, examples=["asha.stores@okhdfcbank"])
    payee_name: str | None = Field(default=None, min_length=1, max_length=100, examples=["Asha Stores"])
    key_id: str | None = Field(default=None, min_length=3, max_length=255, pattern=CREDENTIAL)
    key_secret: str | None = Field(default=None, min_length=8, max_length=255, pattern=CREDENTIAL)
    webhook_secret: str | None = Field(default=None, min_length=8, max_length=255, pattern=CREDENTIAL)
    notify_on_paid: bool = True
    paid_message: str | None = Field(default=None, max_length=1024)

    @field_validator("upi_id")
    @classmethod
    def _vpa(cls, value: str | None) -> str | None:
        if value is not None and not VPA.match(value):
            raise ValueError(f"'{value}' is not a UPI id; it looks like name@bank (e.g. asha.stores@okhdfcbank)")
        return value

    @field_validator("paid_message")
    @classmethod
    def _empty_is_built_in(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _gateway_needs(self) -> PaymentSettingsUpdate:
        if self.gateway == "upi":
            missing = [name for name, value in (("upiId", self.upi_id), ("payeeName", self.payee_name)) if not value]
            if missing:
                raise ValueError(f"a UPI gateway needs {' and '.join(missing)}")
            stray = [
                name for name, value in (("keyId", self.key_id), ("keySecret", self.key_secret)) if value is not None
            ]
            if stray:
                raise ValueError(f"{', '.join(stray)} belong(s) to razorpay or stripe, not upi")
        elif self.gateway == "razorpay":
            if not self.key_id:
                raise ValueError("keyId: a razorpay gateway needs the key id from Razorpay's dashboard (rzp_live_...)")
            if not self.key_id.startswith(("rzp_live_", "rzp_test_")):
                raise ValueError("keyId: a Razorpay key id starts with rzp_live_ or rzp_test_")
        elif self.key_secret is not None and not self.key_secret.startswith(
            ("sk_live_", "sk_test_", "rk_live_", "rk_test_")
        ):
            raise ValueError("keySecret: a Stripe secret key starts with sk_live_ or sk_test_ (or rk_ when restricted)")
        if (
            self.gateway == "stripe"
            and self.webhook_secret is not None
            and not self.webhook_secret.startswith("whsec_")
        ):
            raise ValueError("webhookSecret: a Stripe webhook signing secret starts with whsec_")
        return self


class GatewayAccountOut(Schema):
    """A gateway account kept after the settings moved on: its links still get their webhooks and cancels."""

    gateway: Gateway
    key_id: str | None
    webhook_url: str


class PaymentSettingsOut(Schema):
    """The settings as people configure them; secrets are write-only, so only whether each is set shows."""

    gateway: Gateway
    upi_id: str | None
    payee_name: str | None
    key_id: str | None
    has_key_secret: bool
    has_webhook_secret: bool
    # Paste this into the gateway's dashboard (Razorpay: Webhooks; Stripe: Developers > Webhooks); null for UPI.
    webhook_url: str | None
    webhook_events: list[str]
    # Gateways used before: links made on them are still verified and cancelled with these accounts.
    other_accounts: list[GatewayAccountOut]
    notify_on_paid: bool
    paid_message: str | None
    updated_at: Timestamp | None


class PaymentLinkCreate(RequestSchema):
    amount: int = Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT,
        description="In the currency's minor units: 50000 is ₹500.00",
        examples=[50000],
    )
    currency: str = Field(default="INR", min_length=3, max_length=3, description="ISO 4217; UPI takes INR only")
    description: str = Field(min_length=1, max_length=255, examples=["Order #1042"])
    contact_id: str | None = Field(default=None, min_length=1, max_length=40)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the link stops taking payments; with a time zone (Z or an offset)"
    )
    reference: str | None = Field(default=None, min_length=1, max_length=100, description="Your own order number")
    send: bool = Field(default=False, description="Send the link in the contact's WhatsApp conversation at once")

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        if not value.isalpha() or not value.isascii():
            raise ValueError("must be a three-letter ISO 4217 code such as INR")
        return value.upper()

    @model_validator(mode="after")
    def _one_recipient(self) -> PaymentLinkCreate:
        if bool(self.contact_id) == bool(self.phone):
            raise ValueError("give the contact as contactId or phone (exactly one of them)")
        return self


class PaymentLinkOut(Schema):
    id: str
    amount: int
    currency: str
    # `₹500.00`: the amount as the customer reads it.
    amount_display: str
    description: str
    contact_id: str | None
    reference: str | None
    status: PaymentLinkStatus
    url: str
    gateway: Gateway
    gateway_link_id: str | None
    message_id: str | None
    expires_at: Timestamp | None
    paid_at: Timestamp | None
    cancelled_at: Timestamp | None
    expired_at: Timestamp | None
    created_at: Timestamp


def payment_link_out(link: PaymentLink) -> PaymentLinkOut:
    return PaymentLinkOut(
        id=link.id,
        amount=link.amount,
        currency=link.currency,
        amount_display=format_amount(link.amount, link.currency),
        description=link.description,
        contact_id=link.contact_id,
        reference=link.reference,
        status=link.status,
        url=link.url,
        gateway=link.gateway,
        gateway_link_id=link.gateway_link_id,
        message_id=link.message_id,
        expires_at=link.expires_at,
        paid_at=link.paid_at,
        cancelled_at=link.cancelled_at,
        expired_at=link.expired_at,
        created_at=link.created_at,
    )

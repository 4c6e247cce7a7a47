"""Payment link rules: the organization's gateway settings, creating and sending links, and how a link ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.contacts.repository import ContactRepository
from kaanha.contacts.service import ensure_contact, normalize_for_organization
from kaanha.conversations.window import is_window_open, require_open_window
from kaanha.errors import Conflict, InvalidRequest, KaanhaError
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.messages.schemas import SendRequest
from kaanha.messages.service import send_message
from kaanha.models import Contact, PaymentGatewayAccount, PaymentLink, PaymentSettings
from kaanha.payment_links.gateways import razorpay, stripe
from kaanha.payment_links.gateways.base import Credentials, GatewayLink, LinkRequest, Outcome, PaymentGateway
from kaanha.payment_links.gateways.razorpay import RazorpayGateway
from kaanha.payment_links.gateways.stripe import StripeGateway
from kaanha.payment_links.gateways.upi import UpiGateway
from kaanha.payment_links.money import GATEWAY_NAMES, check_amount, format_amount
from kaanha.payment_links.repository import (
    PaymentGatewayAccountRepository,
    PaymentLinkRepository,
    PaymentSettingsRepository,
    expire_due,
)
from kaanha.payment_links.schemas import (
    GatewayAccountOut,
    PaymentLinkCreate,
    PaymentLinkOut,
    PaymentSettingsOut,
    PaymentSettingsUpdate,
    payment_link_out,
)
from kaanha.runtime import Runtime

logger = logging.getLogger("kaanha.payment_links")

PAGE_PATH = "/pay/{link_id}"
WEBHOOK_PATH = "/api/webhooks/{gateway}/{organization_id}"
WEBHOOK_EVENTS = {"upi": [], "razorpay": razorpay.WEBHOOK_EVENTS, "stripe": stripe.WEBHOOK_EVENTS}
PAY_BUTTON = "Pay"


class PaymentSettingsInvalid(InvalidRequest):
    code = "invalid_payment_settings"


class PaymentSettingsIncomplete(InvalidRequest):
    code = "payment_settings_incomplete"


class PaymentLinkNotCancellable(Conflict):
    code = "payment_link_not_cancellable"


class PaymentLinkNotPayable(Conflict):
    code = "payment_link_not_payable"


class MarkPaidNotSupported(InvalidRequest):
    code = "mark_paid_not_supported"


# --- Settings ------------------------------------------------------------------------------------


def _public(runtime: Runtime, path: str) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}{path}"


def _webhook_url(runtime: Runtime, gateway: str, organization_id: str) -> str:
    return _public(runtime, WEBHOOK_PATH.format(gateway=gateway, organization_id=organization_id))


def settings_out(
    settings: PaymentSettings | None,
    accounts: list[PaymentGatewayAccount],
    runtime: Runtime,
    *,
    organization_id: str,
) -> PaymentSettingsOut:
    gateway = settings.gateway if settings else "upi"
    current = next((account for account in accounts if account.gateway == gateway), None)
    return PaymentSettingsOut(
        gateway=gateway,
        upi_id=settings.upi_id if settings else None,
        payee_name=settings.payee_name if settings else None,
        key_id=current.key_id if current else None,
        has_key_secret=bool(current and current.key_secret_encrypted),
        has_webhook_secret=bool(current and current.webhook_secret_encrypted),
        webhook_url=None if gateway == "upi" else _webhook_url(runtime, gateway, organization_id),
        webhook_events=WEBHOOK_EVENTS[gateway],
        other_accounts=[
            GatewayAccountOut(
                gateway=account.gateway,
                key_id=account.key_id,
                webhook_url=_webhook_url(runtime, account.gateway, organization_id),
            )
            for account in accounts
            if account.gateway != gateway
        ],
        notify_on_paid=settings.notify_on_paid if settings else True,
        paid_message=settings.paid_message if settings else None,
        updated_at=settings.updated_at if settings else None,
    )


async def get_payment_settings(session: AsyncSession, runtime: Runtime, *, organization_id: str) -> PaymentSettingsOut:
    settings = await PaymentSettingsRepository(session, organization_id).current()
    accounts = await PaymentGatewayAccountRepository(session, organization_id).every()
    return settings_out(settings, accounts, runtime, organization_id=organization_id)


async def update_payment_settings(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, data: PaymentSettingsUpdate
) -> PaymentSettingsOut:
    """Replace the settings. Secrets are encrypted at rest; one left out keeps the value stored for that gateway.

    Each gateway's account (keys, webhook secret) is kept when the settings move to another gateway,
    so links made on it still have their webhooks verified and can still be cancelled there.
    Everything is checked before anything is written: an invalid update changes nothing.
    """
    repository = PaymentSettingsRepository(session, organization_id)
    accounts = PaymentGatewayAccountRepository(session, organization_id)
    settings = await repository.current()
    account = await accounts.for_gateway(data.gateway) if data.gateway != "upi" else None
    key_secret = webhook_secret = None
    if data.gateway != "upi":
        name = GATEWAY_NAMES[data.gateway]
        key_secret = _new_or_kept(runtime, data.key_secret, account.key_secret_encrypted if account else None)
        webhook_secret = _new_or_kept(
            runtime, data.webhook_secret, account.webhook_secret_encrypted if account else None
        )
        if key_secret is None:
            what = "the key secret" if data.gateway == "razorpay" else "the secret key (sk_live_...)"
            raise PaymentSettingsInvalid(f"keySecret: a {data.gateway} gateway needs {what} from {name}'s dashboard")
        if webhook_secret is None:
            raise PaymentSettingsInvalid(
                f"webhookSecret: a {data.gateway} gateway needs the webhook secret you set in {name}'s dashboard, "
                "so that its payment notifications can be trusted"
            )
    moment = now()
    if settings is None:
        settings = repository.add(PaymentSettings(id=new_id("pset"), created_at=moment))
    settings.gateway = data.gateway
    settings.upi_id = data.upi_id
    settings.payee_name = data.payee_name
    settings.notify_on_paid = data.notify_on_paid
    settings.paid_message = data.paid_message
    settings.updated_at = moment
    if key_secret is not None and webhook_secret is not None:
        if account is None:
            account = accounts.add(PaymentGatewayAccount(id=new_id("pgac"), gateway=data.gateway, created_at=moment))
        account.key_id = data.key_id
        account.key_secret_encrypted = key_secret
        account.webhook_secret_encrypted = webhook_secret
        account.updated_at = moment
    await session.flush()
    return settings_out(settings, await accounts.every(), runtime, organization_id=organization_id)


def _new_or_kept(runtime: Runtime, given: str | None, stored: str | None) -> str | None:
    return runtime.secret_box.encrypt(given) if given else stored


async def webhook_secret(session: AsyncSession, runtime: Runtime, *, organization_id: str, gateway: str) -> str | None:
    """The webhook secret of the organization's account at `gateway`, current or used before; None without one."""
    account = await PaymentGatewayAccountRepository(session, organization_id).for_gateway(gateway)
    if account is None:
        return None
    return runtime.secret_box.decrypt(account.webhook_secret_encrypted)


async def gateway_for(session: AsyncSession, runtime: Runtime, *, organization_id: str, gateway: str) -> PaymentGateway:
    """The gateway `gateway` with the organization's account there (current or used before); 400 without one."""
    if gateway == "upi":
        return UpiGateway()
    account = await PaymentGatewayAccountRepository(session, organization_id).for_gateway(gateway)
    if account is None:
        name = GATEWAY_NAMES[gateway]
        raise PaymentSettingsIncomplete(
            f"This needs {name}, but no {name} account is set up: add its keys with PUT /payment-settings"
        )
    credentials = Credentials(
        key_id=account.key_id, key_secret=runtime.secret_box.decrypt(account.key_secret_encrypted)
    )
    if gateway == "razorpay":
        return RazorpayGateway(runtime, credentials)
    return StripeGateway(runtime, credentials)


async def _ready_gateway(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, settings: PaymentSettings | None
) -> PaymentGateway:
    if settings is None or (settings.gateway == "upi" and not (settings.upi_id and settings.payee_name)):
        raise PaymentSettingsIncomplete(
            "Payments are not set up yet: PUT /payment-settings with your upiId and payeeName, "
            "or a Razorpay or Stripe account"
        )
    return await gateway_for(session, runtime, organization_id=organization_id, gateway=settings.gateway)


# --- Links ---------------------------------------------------------------------------------------
#
# Making a link is three steps, so that no transaction is open while a gateway answers (it may take
# up to its timeout, longer than SQLite's busy timeout): check_new_link in the request's transaction,
# which the caller then commits; make_at_gateway with none open; store_new_link in a fresh one. A link
# the gateway made but the write did not keep is withdrawn there, so nobody can pay a link we don't know.


@dataclass(frozen=True)
class NewLink:
    """A link request that passed every check, with what the gateway call and the write need."""

    organization_id: str
    gateway: PaymentGateway
    request: LinkRequest
    contact_id: str | None
    send: bool
    payee_upi_id: str | None
    payee_name: str | None
    at: datetime


@dataclass(frozen=True)
class MadeLink:
    """A link the gateway made, not yet stored here."""

    new: NewLink
    made: GatewayLink


async def check_new_link(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, data: PaymentLinkCreate
) -> NewLink:
    """Every check of POST /payment-links, writing nothing: settings, contact, amount and currency
    limits, expiry, and the 24-hour window for `send` (so the gateway never makes a link nobody receives).
    """
    settings = await PaymentSettingsRepository(session, organization_id).current()
    gateway = await _ready_gateway(session, runtime, organization_id=organization_id, settings=settings)
    assert settings is not None
    contact, phone = await _recipient(session, organization_id, data)
    check_amount(data.amount, data.currency, gateway=gateway.name)
    moment = now()
    expires_at = gateway.check_expiry(data.expires_at, at=moment)
    if data.send:
        require_open_window(contact.last_inbound_at if contact else None, message_type="interactive")
    link_id = new_id("pl")
    return NewLink(
        organization_id=organization_id,
        gateway=gateway,
        request=LinkRequest(
            link_id=link_id,
            amount=data.amount,
            currency=data.currency,
            description=data.description,
            reference=data.reference,
            expires_at=expires_at,
            customer_phone=phone,
            customer_name=contact.name if contact else None,
            page_url=_public(runtime, PAGE_PATH.format(link_id=link_id)),
        ),
        contact_id=contact.id if contact else None,
        send=data.send,
        payee_upi_id=settings.upi_id if gateway.name == "upi" else None,
        payee_name=settings.payee_name,
        at=moment,
    )


async def make_at_gateway(new: NewLink) -> MadeLink:
    """Ask the gateway for the link; call it with no transaction open. A refusal leaves no trace anywhere."""
    return MadeLink(new=new, made=await new.gateway.create_link(new.request))


async def store_new_link(session: AsyncSession, runtime: Runtime, *, made: MadeLink) -> PaymentLinkOut:
    """Write the link the gateway made and, with `send`, send it in the contact's conversation.

    A phone no contact has yet becomes a contact, as a send to it would. When this raises, the caller
    rolls back and withdraws the link at the gateway (`withdraw`).
    """
    new, organization_id = made.new, made.new.organization_id
    phone = new.request.customer_phone
    assert phone is not None
    contacts = ContactRepository(session, organization_id)
    contact = await contacts.find(new.contact_id) if new.contact_id else None
    if contact is None:  # a new phone, or the contact was deleted while the gateway answered
        contact = await ensure_contact(session, organization_id=organization_id, phone=phone)
    link = PaymentLinkRepository(session, organization_id).add(
        PaymentLink(
            id=new.request.link_id,
            contact_id=contact.id,
            amount=new.request.amount,
            currency=new.request.currency,
            description=new.request.description,
            reference=new.request.reference,
            status="created",
            gateway=new.gateway.name,
            gateway_link_id=made.made.gateway_link_id,
            url=made.made.url,
            payee_upi_id=new.payee_upi_id,
            payee_name=new.payee_name,
            expires_at=made.made.expires_at,
            created_at=new.at,
            updated_at=new.at,
        )
    )
    await session.flush()
    if new.send:
        message = await send_message(
            session, runtime=runtime, organization_id=organization_id, request=_link_message(link, contact)
        )
        link.message_id = message.id
        await session.flush()
    return payment_link_out(link)


async def withdraw(made: MadeLink) -> None:
    """Cancel at the gateway a link we are not storing after all (the write or the send failed), so it can't be paid."""
    gateway, gateway_link_id = made.new.gateway, made.made.gateway_link_id
    try:
        await gateway.cancel_link(gateway_link_id)
    except KaanhaError as error:
        logger.warning("could not withdraw %s link %s: %s", gateway.name, gateway_link_id, error.message)


async def _recipient(
    session: AsyncSession, organization_id: str, data: PaymentLinkCreate
) -> tuple[Contact | None, str]:
    repository = ContactRepository(session, organization_id)
    if data.contact_id:
        contact = await repository.get(data.contact_id)
        return contact, contact.phone
    assert data.phone is not None
    phone = await normalize_for_organization(session, organization_id=organization_id, phone=data.phone)
    return await repository.find_by_phone(phone), phone


def _link_message(link: PaymentLink, contact: Contact) -> SendRequest:
    text = f"Payment request: {format_amount(link.amount, link.currency)} for {link.description}."
    if link.reference:
        text += f"\nReference: {link.reference}"
    return SendRequest(
        to=contact.phone,
        type="interactive",
        interactive={
            "type": "cta_url",
            "body": {"text": text},
            "action": {"name": "cta_url", "parameters": {"display_text": PAY_BUTTON, "url": link.url}},
        },
    )


async def list_payment_links(
    session: AsyncSession, *, organization_id: str, status: str | None, contact_id: str | None, page: PageRequest
) -> Page[PaymentLinkOut]:
    repository = PaymentLinkRepository(session, organization_id)
    links, total = await repository.page(repository.listing(status=status, contact_id=contact_id), page)
    return Page.of([payment_link_out(link) for link in links], request=page, total=total)


async def get_payment_link(session: AsyncSession, *, organization_id: str, link_id: str) -> PaymentLinkOut:
    return payment_link_out(await PaymentLinkRepository(session, organization_id).get(link_id))


@dataclass(frozen=True)
class Cancellation:
    """A cancel that passed its checks: the link, and its gateway with the account it was made on."""

    organization_id: str
    link_id: str
    gateway: PaymentGateway
    gateway_link_id: str | None


async def check_cancel(session: AsyncSession, runtime: Runtime, *, organization_id: str, link_id: str) -> Cancellation:
    """Only a `created` link can be cancelled, with the account of the gateway it was made on (even a former one).

    Like making a link, cancelling is three steps: this check, `cancel_at_gateway` with no transaction
    open, then `record_cancel` in a fresh one.
    """
    link = await PaymentLinkRepository(session, organization_id).get(link_id)
    if link.status != "created":
        raise PaymentLinkNotCancellable(
            f"Payment link {link_id} is {link.status}; only a created link can be cancelled"
        )
    gateway = await gateway_for(session, runtime, organization_id=organization_id, gateway=link.gateway)
    return Cancellation(
        organization_id=organization_id, link_id=link.id, gateway=gateway, gateway_link_id=link.gateway_link_id
    )


async def cancel_at_gateway(cancellation: Cancellation) -> None:
    """Cancel at the gateway first, so the customer can no longer pay; call it with no transaction open."""
    await cancellation.gateway.cancel_link(cancellation.gateway_link_id)


async def record_cancel(session: AsyncSession, *, cancellation: Cancellation) -> PaymentLinkOut:
    """Cancel the link here once its gateway has; 409 when it was paid or expired meanwhile."""
    organization_id, link_id = cancellation.organization_id, cancellation.link_id
    link = await PaymentLinkRepository(session, organization_id).get(link_id)
    cancelled = await _end(session, organization_id=organization_id, link=link, outcome="cancelled", at=now())
    if cancelled is None:
        await session.refresh(link)
        raise PaymentLinkNotCancellable(f"Payment link {link_id} became {link.status} meanwhile; it was not cancelled")
    return payment_link_out(cancelled)


async def mark_payment_link_paid(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, link_id: str
) -> PaymentLinkOut:
    """The organization says a UPI link was paid (UPI tells no one). Gateways report their own payments."""
    repository = PaymentLinkRepository(session, organization_id)
    link = await repository.get(link_id)
    if link.gateway != "upi":
        name = GATEWAY_NAMES[link.gateway]
        raise MarkPaidNotSupported(
            f"{name} reports this link's payment itself. If the customer paid some other way, cancel the link instead"
        )
    paid = await settle(session, runtime, organization_id=organization_id, link=link, outcome="paid")
    if paid is None:
        await session.refresh(link)
        raise PaymentLinkNotPayable(f"Payment link {link_id} is {link.status}, so it can't be marked paid")
    return payment_link_out(paid)


# --- How a link ends -----------------------------------------------------------------------------

# Paid is accepted after expiry too: UPI money can still arrive once our page stops showing the code,
# and a gateway's word that money moved is the truth whatever our sweep decided a moment earlier.
_FROM = {"paid": ("created", "expired"), "expired": ("created",), "cancelled": ("created",)}
_EVENTS = {
    "paid": event_types.PAYMENT_LINK_PAID,
    "expired": event_types.PAYMENT_LINK_EXPIRED,
    "cancelled": event_types.PAYMENT_LINK_CANCELLED,
}
_STAMPS = {"paid": "paid_at", "expired": "expired_at", "cancelled": "cancelled_at"}


async def _end(
    session: AsyncSession, *, organization_id: str, link: PaymentLink, outcome: Outcome, at: datetime
) -> PaymentLink | None:
    """Move the link to `outcome` with one conditional UPDATE and emit its event; None if it had already moved."""
    changed = await PaymentLinkRepository(session, organization_id).transition(
        link.id, from_statuses=_FROM[outcome], values={"status": outcome, _STAMPS[outcome]: at}
    )
    if changed is not None:
        await emit(session, organization_id=organization_id, type=_EVENTS[outcome], data=payment_link_out(changed))
    return changed


async def settle(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, link: PaymentLink, outcome: Outcome
) -> PaymentLink | None:
    """Apply a gateway's (or the organization's) word about a link, once; a paid link tells its customer."""
    ended = await _end(session, organization_id=organization_id, link=link, outcome=outcome, at=now())
    if ended is not None and outcome == "paid":
        await _tell_customer_paid(session, runtime, ended)
    return ended


def paid_text(link: PaymentLink, settings: PaymentSettings) -> str:
    amount = format_amount(link.amount, link.currency)
    if settings.paid_message:
        return settings.paid_message.replace("{amount}", amount).replace("{description}", link.description)
    return f"Payment of {amount} received for {link.description}. Thank you!"


async def _tell_customer_paid(session: AsyncSession, runtime: Runtime, link: PaymentLink) -> None:
    """Queue the "payment received" message, if the organization wants it and WhatsApp allows it now.

    Outside the 24-hour window only templates may be sent, so the thank-you is skipped silently then;
    a send refused for another reason (the per-recipient limit) is logged, never allowed to undo the payment.
    """
    settings = await PaymentSettingsRepository(session, link.organization_id).current()
    if settings is None or not settings.notify_on_paid or link.contact_id is None:
        return
    contact = await ContactRepository(session, link.organization_id).find(link.contact_id)
    if contact is None or not is_window_open(contact.last_inbound_at):
        return
    request = SendRequest(to=contact.phone, type="text", text=paid_text(link, settings))
    try:
        # A notice, not an answer: it must not count as the conversation's first response (analytics).
        await send_message(
            session, runtime=runtime, organization_id=link.organization_id, request=request, responds=False
        )
    except KaanhaError as error:
        logger.info("payment link %s paid; the thank-you was not sent: %s", link.id, error.message)


async def expire_overdue_links(session: AsyncSession) -> int:
    """The periodic sweep: created links past their expiry become expired, each with its event, once."""
    expired = await expire_due(session, at=now())
    for link in expired:
        await emit(
            session,
            organization_id=link.organization_id,
            type=event_types.PAYMENT_LINK_EXPIRED,
            data=payment_link_out(link),
        )
    return len(expired)

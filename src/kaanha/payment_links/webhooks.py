"""Gateway webhooks: `/api/webhooks/{razorpay|stripe}/{organizationId}`, signature checked, each event applied once."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import NotFound
from kaanha.kit.ids import new_id
from kaanha.models import PaymentGatewayEvent, PaymentLink
from kaanha.payment_links import service
from kaanha.payment_links.gateways import razorpay, stripe
from kaanha.payment_links.gateways.base import WebhookUpdate, parse_webhook_json
from kaanha.payment_links.money import GATEWAY_NAMES
from kaanha.payment_links.repository import GatewayEventRepository, PaymentLinkRepository
from kaanha.runtime import Runtime

logger = logging.getLogger("kaanha.payment_links")


class PaymentWebhookNotConfigured(NotFound):
    code = "payment_webhook_not_configured"


async def receive_gateway_webhook(
    session: AsyncSession,
    runtime: Runtime,
    *,
    gateway: str,
    organization_id: str,
    body: bytes,
    headers: dict[str, str],
) -> bool:
    """Check the signature on the raw bytes, then apply the event; False when it was a duplicate.

    Nothing is read from the body before its signature is checked. The secret is that of the
    organization's account at this gateway, current or used before (links made on a former gateway
    are still paid there); an organization with no account at this gateway can't be sent anything
    (404), so nobody can forge events. A paid event marks the link paid only when it paid the link's
    currency and at least its amount.
    """
    name = GATEWAY_NAMES[gateway]
    secret = await service.webhook_secret(session, runtime, organization_id=organization_id, gateway=gateway)
    if secret is None:
        raise PaymentWebhookNotConfigured(f"No {name} webhook secret is set up for organization {organization_id}")
    update: WebhookUpdate
    if gateway == "razorpay":
        razorpay.verify_webhook(body, headers, secret)
        update = razorpay.parse_webhook(parse_webhook_json(body), headers, body)
    else:
        stripe.verify_webhook(
            body, headers, secret, tolerance_seconds=runtime.settings.payments.stripe_webhook_tolerance_seconds
        )
        update = stripe.parse_webhook(parse_webhook_json(body))
    links = PaymentLinkRepository(session, organization_id)
    link = await links.find_by_gateway_id(gateway, update.gateway_link_id) if update.gateway_link_id else None
    if link is None and update.link_id and update.outcome:
        link = await links.find(update.link_id)
        if link is not None and link.gateway != gateway:
            link = None
    recorded = await GatewayEventRepository(session, organization_id).add_unless_taken(
        PaymentGatewayEvent(
            id=new_id("gwe"),
            gateway=gateway,
            event_id=update.event_id or f"{update.event_type}:{update.gateway_link_id}",
            event_type=update.event_type,
            payment_link_id=link.id if link else None,
        )
    )
    if not recorded:
        return False  # a retry or duplicate of an event already applied: it acts once
    if update.outcome is None:
        if update.note and link is not None:
            logger.info("%s %s for payment link %s: %s", name, update.event_type, link.id, update.note)
        return True
    if link is None:
        # A link made outside Kaanha on the same account: acknowledged so the gateway stops retrying.
        logger.info("%s %s names no payment link of %s", name, update.event_type, organization_id)
        return True
    if update.outcome == "paid" and not _pays_in_full(update, link):
        # Acknowledged (a retry would say the same) but not applied: the link stays as it was, and the
        # organization sees the payment in the gateway's dashboard. Neither gateway sends this for our
        # links (no partial payments, fixed amounts), so it points at a link edited there, or worse.
        logger.warning(
            "%s %s for payment link %s of %s paid %s %s, but the link asks %s %s: not marked paid",
            name,
            update.event_type,
            link.id,
            organization_id,
            update.amount_paid,
            update.currency,
            link.amount,
            link.currency,
        )
        return True
    await service.settle(session, runtime, organization_id=organization_id, link=link, outcome=update.outcome)
    return True


def _pays_in_full(update: WebhookUpdate, link: PaymentLink) -> bool:
    """The link's currency, and at least its amount (a gateway may add its fees or tax on top)."""
    return (
        update.currency is not None
        and update.currency.upper() == link.currency
        and update.amount_paid is not None
        and update.amount_paid >= link.amount
    )

"""HTTP endpoints for payment links: settings and links (API key), gateway webhooks (signed), the /pay page (public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from kaanha.auth.principal import Principal
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.payment_links import page, service
from kaanha.payment_links.repository import find_for_public_page
from kaanha.payment_links.schemas import (
    PaymentLinkCreate,
    PaymentLinkOut,
    PaymentLinkStatus,
    PaymentSettingsOut,
    PaymentSettingsUpdate,
)
from kaanha.payment_links.webhooks import receive_gateway_webhook

router = APIRouter(tags=["Payment links"])
# Gateways call these with their own signatures, never an API key.
webhook_router = APIRouter(prefix="/api/webhooks", tags=["Payment gateway webhooks"])
# The customer's page: outside the API, no key, found by the link's unguessable id.
page_router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(require_scope("payment_links:read"))]
Writer = Annotated[Principal, Depends(require_scope("payment_links:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get("/payment-settings", summary="How the organization takes payments", response_model=PaymentSettingsOut)
async def get_payment_settings(principal: Reader, session: SessionDep, runtime: RuntimeDep) -> PaymentSettingsOut:
    return await service.get_payment_settings(session, runtime, organization_id=principal.organization_id)


@router.put(
    "/payment-settings",
    summary="Choose the gateway: your UPI id, or your Razorpay or Stripe account",
    response_model=PaymentSettingsOut,
    description="`upi` needs `upiId` (name@bank) and `payeeName`; `razorpay` needs `keyId`, `keySecret` and "
    "`webhookSecret`; `stripe` needs `keySecret` (sk_...) and `webhookSecret` (whsec_...). Secrets are "
    "write-only: left out, they keep their stored value while the gateway stays the same. Paste the "
    "returned `webhookUrl` into the gateway's dashboard with the `webhookEvents` listed.",
)
async def put_payment_settings(
    body: PaymentSettingsUpdate, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> PaymentSettingsOut:
    return await service.update_payment_settings(session, runtime, organization_id=principal.organization_id, data=body)


@router.post(
    "/payment-links",
    summary="Create a payment link",
    status_code=201,
    response_model=PaymentLinkOut,
    description="`amount` is in the currency's minor units (50000 is ₹500.00) within the gateway's limits; "
    "the contact is `contactId` or `phone` (a new phone becomes a contact). `send: true` sends the link at "
    "once in the contact's conversation, as a message with a Pay button; it needs the 24-hour window open, "
    "and when it is closed nothing is created. Stripe links expire 30 minutes to 24 hours after creation "
    "(24 hours when `expiresAt` is left out); Razorpay's at least 15 minutes ahead.",
)
async def create_payment_link(
    request: Request,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    body: PaymentLinkCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    made: list[service.MadeLink] = []

    async def create() -> PaymentLinkOut:
        new = await service.check_new_link(session, runtime, organization_id=principal.organization_id, data=body)
        # Nothing is held while the gateway answers (up to its timeout): neither SQLite's write lock (from
        # stamping the key's last use, or clearing an expired Idempotency-Key) nor a PostgreSQL row lock.
        await session.commit()
        made.append(await service.make_at_gateway(new))
        # The link and the Idempotency-Key's record are written together, in the next transaction.
        return await service.store_new_link(session, runtime, made=made[0])

    try:
        response = await idempotent(
            session,
            organization_id=principal.organization_id,
            key=idempotency_key,
            endpoint="POST /payment-links",
            request_body=await request.body(),
            status_code=201,
            action=create,
        )
        # Committed here rather than at the edge, so that a link not kept (a refused send, a concurrent
        # request with the same Idempotency-Key, a failed commit) is withdrawn at its gateway.
        await session.commit()
    except Exception:
        if made:
            await service.withdraw(made[0])
        raise
    return response


@router.get("/payment-links", summary="List payment links, newest first", response_model=Page[PaymentLinkOut])
async def list_payment_links(
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    status: Annotated[PaymentLinkStatus | None, Query(description="Only links in this status")] = None,
    contact_id: Annotated[
        str | None, Query(alias="contactId", max_length=40, description="Only this contact's")
    ] = None,
) -> Page[PaymentLinkOut]:
    return await service.list_payment_links(
        session, organization_id=principal.organization_id, status=status, contact_id=contact_id, page=paging
    )


@router.get("/payment-links/{payment_link_id}", summary="Get a payment link", response_model=PaymentLinkOut)
async def get_payment_link(payment_link_id: str, principal: Reader, session: SessionDep) -> PaymentLinkOut:
    return await service.get_payment_link(session, organization_id=principal.organization_id, link_id=payment_link_id)


@router.post(
    "/payment-links/{payment_link_id}/cancel",
    summary="Cancel a payment link (at its gateway too)",
    response_model=PaymentLinkOut,
    description="Only a `created` link can be cancelled (409 otherwise).",
)
async def cancel_payment_link(
    payment_link_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> PaymentLinkOut:
    cancellation = await service.check_cancel(
        session, runtime, organization_id=principal.organization_id, link_id=payment_link_id
    )
    # As for a create: no transaction (nor lock) is held while the gateway answers.
    await session.commit()
    await service.cancel_at_gateway(cancellation)
    return await service.record_cancel(session, cancellation=cancellation)


@router.post(
    "/payment-links/{payment_link_id}/mark-paid",
    summary="Mark a UPI payment link paid",
    response_model=PaymentLinkOut,
    description="UPI has no callback, so the organization says when the money arrived (also after expiry: "
    "a QR code can still be paid). Razorpay and Stripe links report their payments themselves (400).",
)
async def mark_payment_link_paid(
    payment_link_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> PaymentLinkOut:
    return await service.mark_payment_link_paid(
        session, runtime, organization_id=principal.organization_id, link_id=payment_link_id
    )


@webhook_router.post("/razorpay/{organization_id}", summary="Razorpay's payment link webhooks (signed)")
async def razorpay_webhook(
    organization_id: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    await receive_gateway_webhook(
        session,
        runtime,
        gateway="razorpay",
        organization_id=organization_id,
        body=await request.body(),
        headers=dict(request.headers),
    )
    return JsonResponse({"received": True})


@webhook_router.post("/stripe/{organization_id}", summary="Stripe's Checkout webhooks (signed)")
async def stripe_webhook(
    organization_id: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> JsonResponse:
    await receive_gateway_webhook(
        session,
        runtime,
        gateway="stripe",
        organization_id=organization_id,
        body=await request.body(),
        headers=dict(request.headers),
    )
    return JsonResponse({"received": True})


@page_router.get("/pay/{payment_link_id}", response_class=HTMLResponse)
async def payment_page(payment_link_id: str, session: SessionDep) -> HTMLResponse:
    link = await find_for_public_page(session, payment_link_id)
    if link is None:
        return HTMLResponse(page.render_not_found(), status_code=404, headers=page.HEADERS)
    return HTMLResponse(page.render_page(link), headers=page.HEADERS)

"""HTTP endpoints for broadcasts: create, follow with live counts, list recipients, pause, resume, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from kaanha.auth.principal import Principal
from kaanha.broadcasts import service
from kaanha.broadcasts.schemas import (
    Audience,
    AudienceCount,
    BroadcastCreate,
    BroadcastOut,
    BroadcastStatus,
    RecipientFilter,
    RecipientOut,
)
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request

router = APIRouter(prefix="/broadcasts", tags=["Broadcasts"])

Reader = Annotated[Principal, Depends(require_scope("broadcasts:read"))]
Writer = Annotated[Principal, Depends(require_scope("broadcasts:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get("", summary="List broadcasts", response_model=Page[BroadcastOut])
async def list_broadcasts(
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    status: Annotated[BroadcastStatus | None, Query(description="Only broadcasts in this status")] = None,
) -> Page[BroadcastOut]:
    return await service.list_broadcasts(session, organization_id=principal.organization_id, status=status, page=paging)


@router.post(
    "",
    summary="Create a broadcast",
    status_code=201,
    response_model=BroadcastOut,
    description="Sends an APPROVED template to an audience: contacts with any of `tags`, the `contactIds` "
    "listed, or `all` opted-in contacts. Parameter texts may use contact fields with a fallback, "
    "`{{contact.name|there}}`, `{{contact.attributes.city}}`. It starts at once, or at `scheduledAt`. "
    "Marketing templates skip contacts who have not opted in; a contact over the 20 messages/hour limit "
    "is skipped too (`skippedByReason`). The Starter plan allows 1,000 contacts per broadcast "
    "(403 `plan_limit_exceeded`).",
)
async def create_broadcast(
    request: Request,
    principal: Writer,
    session: SessionDep,
    body: BroadcastCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    async def create() -> BroadcastOut:
        return await service.create_broadcast(session, organization_id=principal.organization_id, data=body)

    return await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /broadcasts",
        request_body=await request.body(),
        status_code=201,
        action=create,
    )


@router.post(
    "/audience",
    summary="Count an audience",
    response_model=AudienceCount,
    description="How many contacts an audience names right now, beside the plan's limit per broadcast.",
)
async def count_audience(body: Audience, principal: Reader, session: SessionDep) -> AudienceCount:
    return await service.count_audience(session, organization_id=principal.organization_id, audience=body)


@router.get("/{broadcast_id}", summary="Get a broadcast with its live counts", response_model=BroadcastOut)
async def get_broadcast(broadcast_id: str, principal: Reader, session: SessionDep) -> BroadcastOut:
    return await service.get_broadcast(session, organization_id=principal.organization_id, broadcast_id=broadcast_id)


@router.get("/{broadcast_id}/recipients", summary="List a broadcast's recipients", response_model=Page[RecipientOut])
async def list_recipients(
    broadcast_id: str,
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    status: Annotated[RecipientFilter | None, Query(description="Only recipients in this state")] = None,
) -> Page[RecipientOut]:
    return await service.list_recipients(
        session, organization_id=principal.organization_id, broadcast_id=broadcast_id, status=status, page=paging
    )


@router.post("/{broadcast_id}/pause", summary="Pause a running broadcast", response_model=BroadcastOut)
async def pause_broadcast(broadcast_id: str, principal: Writer, session: SessionDep) -> BroadcastOut:
    return await service.pause_broadcast(session, organization_id=principal.organization_id, broadcast_id=broadcast_id)


@router.post("/{broadcast_id}/resume", summary="Resume a paused broadcast", response_model=BroadcastOut)
async def resume_broadcast(broadcast_id: str, principal: Writer, session: SessionDep) -> BroadcastOut:
    return await service.resume_broadcast(session, organization_id=principal.organization_id, broadcast_id=broadcast_id)


@router.post("/{broadcast_id}/cancel", summary="Cancel a broadcast", response_model=BroadcastOut)
async def cancel_broadcast(broadcast_id: str, principal: Writer, session: SessionDep) -> BroadcastOut:
    return await service.cancel_broadcast(session, organization_id=principal.organization_id, broadcast_id=broadcast_id)

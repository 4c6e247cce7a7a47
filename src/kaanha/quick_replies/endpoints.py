"""HTTP endpoints for quick replies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from kaanha.auth.principal import Principal
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.quick_replies import service
from kaanha.quick_replies.schemas import QuickReplyCreate, QuickReplyOut, QuickReplyUpdate

router = APIRouter(prefix="/quick-replies", tags=["Quick replies"])

Reader = Annotated[Principal, Depends(require_scope("quick_replies:read"))]
Writer = Annotated[Principal, Depends(require_scope("quick_replies:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get("", summary="List quick replies", response_model=Page[QuickReplyOut])
async def list_quick_replies(
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    search: Annotated[
        str | None, Query(max_length=100, description="The start of a shortcut ('/tha') or part of the text")
    ] = None,
) -> Page[QuickReplyOut]:
    return await service.list_quick_replies(
        session,
        organization_id=principal.organization_id,
        search=search.strip() if search and search.strip() and "\x00" not in search else None,
        page=paging,
    )


@router.post(
    "",
    summary="Create a quick reply",
    status_code=201,
    response_model=QuickReplyOut,
    description="A shortcut unique in the organization, a text that may use contact fields "
    "({{contact.name|there}}) and optional media. Send it with `POST /send` and `quickReply`.",
)
async def create_quick_reply(
    request: Request,
    body: QuickReplyCreate,
    principal: Writer,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    async def create() -> QuickReplyOut:
        return await service.create_quick_reply(session, organization_id=principal.organization_id, data=body)

    return await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /quick-replies",
        request_body=await request.body(),
        status_code=201,
        action=create,
    )


@router.get("/{quick_reply_id}", summary="Get a quick reply", response_model=QuickReplyOut)
async def get_quick_reply(quick_reply_id: str, principal: Reader, session: SessionDep) -> QuickReplyOut:
    return await service.get_quick_reply(
        session, organization_id=principal.organization_id, quick_reply_id=quick_reply_id
    )


@router.patch("/{quick_reply_id}", summary="Update a quick reply", response_model=QuickReplyOut)
async def update_quick_reply(
    quick_reply_id: str, body: QuickReplyUpdate, principal: Writer, session: SessionDep
) -> QuickReplyOut:
    return await service.update_quick_reply(
        session, organization_id=principal.organization_id, quick_reply_id=quick_reply_id, data=body
    )


@router.delete("/{quick_reply_id}", summary="Delete a quick reply", status_code=204)
async def delete_quick_reply(quick_reply_id: str, principal: Writer, session: SessionDep) -> Response:
    await service.delete_quick_reply(session, organization_id=principal.organization_id, quick_reply_id=quick_reply_id)
    return Response(status_code=204)

"""HTTP endpoints for contacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from kaanha.auth.principal import Principal
from kaanha.contacts import service
from kaanha.contacts.schemas import ContactCreate, ContactOut, ContactUpdate
from kaanha.errors import InvalidRequest
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request

router = APIRouter(prefix="/contacts", tags=["Contacts"])

Reader = Annotated[Principal, Depends(require_scope("contacts:read"))]
Writer = Annotated[Principal, Depends(require_scope("contacts:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get("", summary="List contacts", response_model=Page[ContactOut])
async def list_contacts(
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    search: Annotated[str | None, Query(max_length=100, description="Name or phone, substring")] = None,
    tag: Annotated[str | None, Query(max_length=64, description="Only contacts with this tag")] = None,
) -> Page[ContactOut]:
    if "\x00" in (search or "") + (tag or ""):
        raise InvalidRequest("search and tag must not contain NUL characters (\\u0000)")
    return await service.list_contacts(
        session,
        organization_id=principal.organization_id,
        search=search.strip() if search and search.strip() else None,
        tag=tag,
        page=paging,
    )


@router.post("", summary="Create a contact", status_code=201, response_model=ContactOut)
async def create_contact(
    request: Request,
    principal: Writer,
    session: SessionDep,
    body: ContactCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    async def create() -> ContactOut:
        return await service.create_contact(
            session, organization_id=principal.organization_id, data=body, source_detail=_actor(principal)
        )

    return await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /contacts",
        request_body=await request.body(),
        status_code=201,
        action=create,
    )


@router.get("/{contact_id}", summary="Get a contact", response_model=ContactOut)
async def get_contact(contact_id: str, principal: Reader, session: SessionDep) -> ContactOut:
    return await service.get_contact(session, organization_id=principal.organization_id, contact_id=contact_id)


@router.patch("/{contact_id}", summary="Update a contact", response_model=ContactOut)
async def update_contact(contact_id: str, body: ContactUpdate, principal: Writer, session: SessionDep) -> ContactOut:
    return await service.update_contact(
        session,
        organization_id=principal.organization_id,
        contact_id=contact_id,
        data=body,
        source_detail=_actor(principal),
    )


@router.delete("/{contact_id}", summary="Delete a contact", status_code=204)
async def delete_contact(contact_id: str, principal: Writer, session: SessionDep) -> Response:
    await service.delete_contact(session, organization_id=principal.organization_id, contact_id=contact_id)
    return Response(status_code=204)


def _actor(principal: Principal) -> str | None:
    """Who changed a contact's opt-in, for its history: the API key's id (or a dashboard user's)."""
    return principal.api_key_id or principal.user_id

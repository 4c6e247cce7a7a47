"""HTTP endpoints for message templates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from kaanha.auth.principal import Principal
from kaanha.errors import InvalidRequest
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.templates import service
from kaanha.templates.schemas import SyncSummary, TemplateCreate, TemplateOut

router = APIRouter(prefix="/templates", tags=["Templates"])

Reader = Annotated[Principal, Depends(require_scope("templates:read"))]
Writer = Annotated[Principal, Depends(require_scope("templates:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get("", summary="List templates", response_model=Page[TemplateOut])
async def list_templates(
    principal: Reader,
    session: SessionDep,
    paging: Paging,
    status: Annotated[str | None, Query(max_length=20, description="APPROVED, PENDING, REJECTED, ...")] = None,
    category: Annotated[str | None, Query(max_length=20, description="MARKETING, UTILITY or AUTHENTICATION")] = None,
    language: Annotated[str | None, Query(max_length=15, description="A language code such as en_US")] = None,
    search: Annotated[str | None, Query(max_length=100, description="Part of the name")] = None,
) -> Page[TemplateOut]:
    if "\x00" in "".join(value or "" for value in (status, category, language, search)):
        raise InvalidRequest("Filters must not contain NUL characters (\\u0000)")
    return await service.list_templates(
        session,
        organization_id=principal.organization_id,
        status=status or None,
        category=category or None,
        language=language or None,
        search=search.strip() if search and search.strip() else None,
        page=paging,
    )


@router.post(
    "",
    summary="Create a template",
    status_code=201,
    response_model=TemplateOut,
    description="Checked against Meta's rules, then reviewed: by Meta on the Cloud API (submitted before "
    "anything is stored), by the sandbox's rules otherwise. It starts PENDING; `template.updated` tells the verdict.",
)
async def create_template(
    request: Request,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    body: TemplateCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    async def create() -> TemplateOut:
        return await service.create_template(
            session, runtime=runtime, organization_id=principal.organization_id, data=body
        )

    return await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /templates",
        request_body=await request.body(),
        status_code=201,
        action=create,
    )


@router.post(
    "/sync",
    summary="Bring templates in from Meta",
    response_model=SyncSummary,
    description="On the Cloud API, reads every template of the WABA and creates, updates and deletes ours to "
    "match (it also runs every 15 minutes). On the sandbox there is nothing to bring in.",
)
async def sync_templates(principal: Writer, session: SessionDep, runtime: RuntimeDep) -> SyncSummary:
    return await service.sync_templates(session, runtime=runtime, organization_id=principal.organization_id)


@router.get("/{template_id}", summary="Get a template", response_model=TemplateOut)
async def get_template(template_id: str, principal: Reader, session: SessionDep) -> TemplateOut:
    return await service.get_template(session, organization_id=principal.organization_id, template_id=template_id)


@router.delete("/{template_id}", summary="Delete a template", status_code=204)
async def delete_template(template_id: str, principal: Writer, session: SessionDep, runtime: RuntimeDep) -> Response:
    await service.delete_template(
        session, runtime=runtime, organization_id=principal.organization_id, template_id=template_id
    )
    return Response(status_code=204)

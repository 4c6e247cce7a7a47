"""HTTP endpoints for opt-in: a contact's history, and the organization's keywords and replies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from kaanha.auth.principal import Principal
from kaanha.consent import service
from kaanha.consent.schemas import ConsentChangeOut, OptInSettings, OptInSettingsUpdate
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.kit.pagination import Page, PageRequest, page_request

router = APIRouter(tags=["Opt-in"])

Reader = Annotated[Principal, Depends(require_scope("contacts:read"))]
Writer = Annotated[Principal, Depends(require_scope("contacts:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]


@router.get(
    "/contacts/{contact_id}/opt-in-history",
    summary="A contact's opt-in changes, newest first",
    response_model=Page[ConsentChangeOut],
)
async def opt_in_history(
    contact_id: str, principal: Reader, session: SessionDep, paging: Paging
) -> Page[ConsentChangeOut]:
    return await service.opt_in_history(
        session, organization_id=principal.organization_id, contact_id=contact_id, page=paging
    )


@router.get("/opt-in-settings", summary="Opt-out and opt-in keywords and replies", response_model=OptInSettings)
async def get_opt_in_settings(principal: Reader, session: SessionDep) -> OptInSettings:
    return await service.get_opt_in_settings(session, organization_id=principal.organization_id)


@router.put(
    "/opt-in-settings",
    summary="Replace the organization's own opt-out and opt-in keywords and replies",
    response_model=OptInSettings,
)
async def put_opt_in_settings(body: OptInSettingsUpdate, principal: Writer, session: SessionDep) -> OptInSettings:
    return await service.update_opt_in_settings(session, organization_id=principal.organization_id, data=body)

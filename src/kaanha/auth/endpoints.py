"""HTTP endpoints for API keys: list, create (secret shown once), revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from kaanha.auth import api_keys
from kaanha.auth.principal import Principal
from kaanha.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.kit.pagination import Page, PageRequest, page_request

router = APIRouter(prefix="/api-keys", tags=["API keys"])

Reader = Annotated[Principal, Depends(require_scope("api_keys:read"))]
Writer = Annotated[Principal, Depends(require_scope("api_keys:write"))]


@router.get("", summary="List API keys", response_model=Page[ApiKeyOut])
async def list_keys(
    principal: Reader, session: SessionDep, paging: Annotated[PageRequest, Depends(page_request)]
) -> Page[ApiKeyOut]:
    return await api_keys.list_api_keys(session, organization_id=principal.organization_id, page=paging)


@router.post("", summary="Create an API key", status_code=201, response_model=ApiKeyCreated)
async def create_key(body: ApiKeyCreate, principal: Writer, session: SessionDep) -> ApiKeyCreated:
    created = await api_keys.create_api_key(
        session,
        organization_id=principal.organization_id,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        granted_by=principal,
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(created.record).model_dump(), key=created.secret)


@router.delete("/{key_id}", summary="Revoke an API key", response_model=ApiKeyOut)
async def revoke_key(key_id: str, principal: Writer, session: SessionDep) -> ApiKeyOut:
    key = await api_keys.revoke_api_key(session, organization_id=principal.organization_id, key_id=key_id)
    return ApiKeyOut.model_validate(key)

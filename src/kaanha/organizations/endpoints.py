"""GET /status (the reference's connection summary) and GET|PUT /connection (its configuration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from kaanha.auth.principal import Principal
from kaanha.http.dependencies import PrincipalDep, RuntimeDep, SessionDep, require_scope
from kaanha.organizations.connection import connection_status, get_connection_details, update_connection
from kaanha.organizations.schemas import ConnectionOut, ConnectionStatus, ConnectionUpdate

router = APIRouter(tags=["Status"])
Reader = Annotated[Principal, Depends(require_scope("connection:read"))]
Writer = Annotated[Principal, Depends(require_scope("connection:write"))]


@router.get("/status", summary="WhatsApp connection status", response_model=ConnectionStatus)
async def get_status(principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep) -> ConnectionStatus:
    return await connection_status(session, runtime, organization_id=principal.organization_id)


@router.get("/connection", summary="The WhatsApp connection's configuration", response_model=ConnectionOut)
async def get_connection(principal: Reader, session: SessionDep, runtime: RuntimeDep) -> ConnectionOut:
    return await get_connection_details(session, runtime, organization_id=principal.organization_id)


@router.put(
    "/connection",
    summary="Connect the sandbox or Meta's Cloud API (credentials are checked with Meta first)",
    response_model=ConnectionOut,
)
async def put_connection(
    body: ConnectionUpdate, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> ConnectionOut:
    return await update_connection(session, runtime, organization_id=principal.organization_id, update=body)

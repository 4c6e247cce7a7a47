"""GET /status: the organization's WhatsApp connection as the reference shows it."""

from __future__ import annotations

from fastapi import APIRouter

from kaanha.http.dependencies import PrincipalDep, SessionDep
from kaanha.organizations.schemas import ConnectionStatus
from kaanha.organizations.service import connection_status

router = APIRouter(tags=["Status"])


@router.get("/status", summary="WhatsApp connection status", response_model=ConnectionStatus)
async def get_status(principal: PrincipalDep, session: SessionDep) -> ConnectionStatus:
    return await connection_status(session, organization_id=principal.organization_id)

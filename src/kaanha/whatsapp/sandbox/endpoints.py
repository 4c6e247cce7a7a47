"""POST /sandbox/inbound: play a customer writing to the sandbox number."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from kaanha.auth.principal import Principal
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.messages.schemas import MessageOut
from kaanha.whatsapp.sandbox import service
from kaanha.whatsapp.sandbox.schemas import SandboxInbound

Sender = Annotated[Principal, Depends(require_scope("messages:send"))]
router = APIRouter(prefix="/sandbox", tags=["Sandbox"])


@router.post(
    "/inbound",
    summary="Simulate a customer's message (sandbox only)",
    status_code=201,
    response_model=MessageOut,
)
async def simulate_inbound(
    body: SandboxInbound,
    principal: Sender,
    session: SessionDep,
) -> MessageOut:
    return await service.receive(session, organization_id=principal.organization_id, data=body)

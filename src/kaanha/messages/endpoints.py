"""HTTP endpoints for messages: list, get, and `POST /send`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from kaanha.auth.principal import Principal
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.http.responses import JsonResponse
from kaanha.idempotency.service import IdempotencyKeyHeader, idempotent
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.messages import service
from kaanha.messages.schemas import MessageOut, SendRequest

router = APIRouter(tags=["Messages"])

Reader = Annotated[Principal, Depends(require_scope("messages:read"))]
Sender = Annotated[Principal, Depends(require_scope("messages:send"))]


@router.get("/messages", summary="List recent messages across conversations", response_model=Page[MessageOut])
async def list_messages(
    principal: Reader,
    session: SessionDep,
    paging: Annotated[PageRequest, Depends(page_request)],
    conversation_id: Annotated[str | None, Query(alias="conversationId", max_length=64)] = None,
) -> Page[MessageOut]:
    return await service.list_messages(
        session, organization_id=principal.organization_id, conversation_id=conversation_id, page=paging
    )


@router.get("/messages/{message_id}", summary="Get a message and its delivery status", response_model=MessageOut)
async def get_message(message_id: str, principal: Reader, session: SessionDep) -> MessageOut:
    return await service.get_message(session, organization_id=principal.organization_id, message_id=message_id)


@router.post(
    "/send",
    summary="Send a message",
    status_code=201,
    response_model=MessageOut,
    description="Queues a message of any of the ten types. Anything but `template` needs the contact to "
    "have written within 24 hours (WhatsApp's customer service window).",
)
async def send(
    request: Request,
    body: SendRequest,
    principal: Sender,
    session: SessionDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JsonResponse:
    async def send_once() -> MessageOut:
        return await service.send_message(
            session,
            runtime=runtime,
            organization_id=principal.organization_id,
            request=body,
            sent_by_user_id=principal.user_id,
        )

    return await idempotent(
        session,
        organization_id=principal.organization_id,
        key=idempotency_key,
        endpoint="POST /send",
        request_body=await request.body(),
        status_code=201,
        action=send_once,
    )

"""HTTP endpoints for conversations (`/chats`, as the reference names them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kaanha.auth.principal import Principal
from kaanha.conversations import service
from kaanha.conversations.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationStatus,
    ConversationUpdate,
)
from kaanha.http.dependencies import SessionDep, require_scope
from kaanha.kit.pagination import Page, PageRequest, page_request

router = APIRouter(prefix="/chats", tags=["Conversations"])

Reader = Annotated[Principal, Depends(require_scope("conversations:read"))]
Writer = Annotated[Principal, Depends(require_scope("conversations:write"))]


@router.get("", summary="List conversations", response_model=Page[ConversationOut])
async def list_conversations(
    principal: Reader,
    session: SessionDep,
    paging: Annotated[PageRequest, Depends(page_request)],
    status: Annotated[ConversationStatus | None, Query(description="OPEN / ASSIGNED / RESOLVED")] = None,
) -> Page[ConversationOut]:
    return await service.list_conversations(
        session, organization_id=principal.organization_id, status=status, page=paging
    )


@router.get("/{conversation_id}", summary="Get a conversation with recent messages", response_model=ConversationDetail)
async def get_conversation(conversation_id: str, principal: Reader, session: SessionDep) -> ConversationDetail:
    return await service.get_conversation(
        session, organization_id=principal.organization_id, conversation_id=conversation_id
    )


@router.patch("/{conversation_id}", summary="Assign, resolve or reopen", response_model=ConversationDetail)
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, principal: Writer, session: SessionDep
) -> ConversationDetail:
    return await service.update_conversation(
        session,
        organization_id=principal.organization_id,
        conversation_id=conversation_id,
        data=body,
        user_id=principal.user_id,
    )


@router.post("/{conversation_id}/read", summary="Mark a conversation read", response_model=ConversationDetail)
async def mark_read(conversation_id: str, principal: Writer, session: SessionDep) -> ConversationDetail:
    return await service.mark_read(session, organization_id=principal.organization_id, conversation_id=conversation_id)

"""HTTP endpoints for AI agents: configuration, knowledge documents, a test question, and their conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from kaanha.ai_agents import service
from kaanha.ai_agents.schemas import AgentCreate, AgentOut, AgentUpdate, DocumentIn, RunOut, TestAnswer, TestRequest
from kaanha.auth.principal import Principal
from kaanha.errors import InvalidRequest
from kaanha.http.dependencies import RuntimeDep, SessionDep, require_scope
from kaanha.kit.pagination import Page, PageRequest, page_request
from kaanha.media import service as media_service

router = APIRouter(prefix="/ai-agents", tags=["AI agents"])

Reader = Annotated[Principal, Depends(require_scope("ai_agents:read"))]
Writer = Annotated[Principal, Depends(require_scope("ai_agents:write"))]
Paging = Annotated[PageRequest, Depends(page_request)]
CHUNK = 256 * 1024

_HOW = (
    "An enabled agent answers customers' messages in conversations nobody is assigned to and that its `serves` "
    "rules match (contact tags, only outside business hours in the organization's time zone), from its "
    "knowledge base and documents, within the 24-hour window. It hands the conversation to people, saying "
    "`handoff.message`, when the customer uses a handoff keyword, after `maxBotReplies` replies in a row, "
    "when its confidence is below `confidenceThreshold`, or when the model fails twice; assigning a person "
    "stops it until the conversation is resolved."
)


@router.get("", summary="List AI agents", response_model=Page[AgentOut])
async def list_agents(principal: Reader, session: SessionDep, paging: Paging) -> Page[AgentOut]:
    return await service.list_agents(session, organization_id=principal.organization_id, page=paging)


@router.post("", summary="Create an AI agent", status_code=201, response_model=AgentOut, description=_HOW)
async def create_agent(body: AgentCreate, principal: Writer, session: SessionDep, runtime: RuntimeDep) -> AgentOut:
    return await service.create_agent(session, runtime=runtime, organization_id=principal.organization_id, data=body)


@router.get("/{agent_id}", summary="Get an AI agent", response_model=AgentOut)
async def get_agent(agent_id: str, principal: Reader, session: SessionDep) -> AgentOut:
    return await service.get_agent(session, organization_id=principal.organization_id, agent_id=agent_id)


@router.patch(
    "/{agent_id}",
    summary="Update an AI agent",
    response_model=AgentOut,
    description="Fields left out stay. `knowledgeBase`, `documents`, `serves` and `handoff` are replaced whole. "
    "`apiKey` is write-only (`hasApiKey` tells whether one is stored); changing the provider drops the old key.",
)
async def update_agent(
    agent_id: str, body: AgentUpdate, principal: Writer, session: SessionDep, runtime: RuntimeDep
) -> AgentOut:
    return await service.update_agent(
        session, runtime=runtime, organization_id=principal.organization_id, agent_id=agent_id, data=body
    )


@router.delete("/{agent_id}", summary="Delete an AI agent", status_code=204)
async def delete_agent(agent_id: str, principal: Writer, session: SessionDep) -> Response:
    await service.delete_agent(session, organization_id=principal.organization_id, agent_id=agent_id)
    return Response(status_code=204)


@router.post(
    "/{agent_id}/documents",
    summary="Add a PDF or DOCX document to an AI agent's knowledge",
    status_code=201,
    response_model=AgentOut,
    description="Multipart field `file` (PDF or DOCX, at most 16 MB) and optional `name`. The file is stored as "
    "media and its text split into passages; the agent's other documents stay.",
)
async def upload_document(
    agent_id: str,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    # Optional here so that another organization's agent id answers 404 before the body is looked at.
    file: Annotated[UploadFile | None, File(description="A PDF or DOCX file")] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> AgentOut:
    await service.get_agent(session, organization_id=principal.organization_id, agent_id=agent_id)
    if file is None:
        raise InvalidRequest("Send the document as the multipart field 'file' (a PDF or DOCX)")
    upload = file

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(CHUNK):
            yield chunk

    try:
        media = await media_service.store_upload(
            session,
            organization_id=principal.organization_id,
            store=runtime.media_store,
            chunks=chunks(),
            filename=upload.filename,
            max_bytes=runtime.settings.max_upload_bytes,
        )
    finally:
        await upload.close()
    return await service.add_document(
        session,
        runtime=runtime,
        organization_id=principal.organization_id,
        agent_id=agent_id,
        document=DocumentIn(media_id=media.media_id, name=name or upload.filename),
    )


@router.post(
    "/{agent_id}/test",
    summary="Ask an AI agent a question without sending anything",
    response_model=TestAnswer,
    description="Answers as the agent would answer a customer's first message: `reply` (the handoff message when "
    "`handoff` is true, with its `reason`), its `confidence`, and the knowledge `passages` it used. With an "
    "OpenAI or Anthropic agent this calls the model.",
)
async def test_agent(
    agent_id: str, body: TestRequest, principal: Reader, session: SessionDep, runtime: RuntimeDep
) -> TestAnswer:
    # No transaction (nor SQLite's lock from stamping the key's last use) is held while a model thinks.
    await session.commit()
    return await service.test_agent(
        runtime, organization_id=principal.organization_id, agent_id=agent_id, question=body.question
    )


@router.get(
    "/{agent_id}/conversations",
    summary="List the conversations an AI agent handled",
    response_model=Page[RunOut],
    description="Newest first: each stretch of a conversation the agent handled, whether it is still answering "
    "(`active`), stopped (a handoff, with `handoffReason` and `handoffNote`, or a person assigned), or ended.",
)
async def list_agent_conversations(
    agent_id: str, principal: Reader, session: SessionDep, paging: Paging
) -> Page[RunOut]:
    return await service.list_runs(session, organization_id=principal.organization_id, agent_id=agent_id, page=paging)

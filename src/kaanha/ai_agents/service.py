"""AI agent rules: configuring agents and their knowledge, answering a question as an agent, and their counts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.ai_agents import retrieval
from kaanha.ai_agents.documents import extract_text, split_passages
from kaanha.ai_agents.providers.anthropic import AnthropicProvider
from kaanha.ai_agents.providers.base import AgentProvider, AnswerRequest, ProviderFailure, Turn
from kaanha.ai_agents.providers.builtin import BuiltinProvider
from kaanha.ai_agents.providers.openai import OpenAIProvider
from kaanha.ai_agents.repository import AgentRepository, RunRepository
from kaanha.ai_agents.rules import handoff_keyword, is_small_talk
from kaanha.ai_agents.schemas import (
    BUILTIN_MODELS,
    MAX_DOCUMENTS,
    AgentCounts,
    AgentCreate,
    AgentOut,
    AgentUpdate,
    DocumentIn,
    DocumentOut,
    Handoff,
    HandoffOut,
    KnowledgeItemOut,
    PassageOut,
    RunOut,
    Serves,
    ServesOut,
    TestAnswer,
)
from kaanha.errors import InvalidRequest
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.kit.schemas import dump
from kaanha.media.repository import MediaRepository
from kaanha.models import AiAgent, AiAgentPassage, AiAgentRun, Message
from kaanha.runtime import Runtime
from kaanha.webhooks.service import check_target_url

logger = logging.getLogger("kaanha.ai_agents")

PASSAGES_GIVEN = 3


class InvalidAgent(InvalidRequest):
    code = "invalid_ai_agent"


def agent_out(agent: AiAgent) -> AgentOut:
    return AgentOut(
        id=agent.id,
        name=agent.name,
        instructions=agent.instructions,
        provider=agent.provider,
        model=agent.model,
        base_url=agent.base_url,
        has_api_key=bool(agent.api_key_encrypted),
        knowledge_base=[KnowledgeItemOut.model_validate(item) for item in agent.knowledge_base or []],
        documents=[DocumentOut.model_validate(document) for document in agent.documents or []],
        # Through the request schemas, so agents stored before a default was added show it.
        serves=ServesOut.model_validate(Serves.model_validate(agent.serves or {}).model_dump()),
        handoff=HandoffOut.model_validate(Handoff.model_validate(agent.handoff or {}).model_dump()),
        enabled=agent.enabled,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


async def list_agents(session: AsyncSession, *, organization_id: str, page: PageRequest) -> Page[AgentOut]:
    repository = AgentRepository(session, organization_id)
    agents, total = await repository.page(repository.listing(), page)
    return Page.of([agent_out(agent) for agent in agents], request=page, total=total)


async def get_agent(session: AsyncSession, *, organization_id: str, agent_id: str) -> AgentOut:
    return agent_out(await AgentRepository(session, organization_id).get(agent_id))


async def create_agent(session: AsyncSession, *, runtime: Runtime, organization_id: str, data: AgentCreate) -> AgentOut:
    """Check every field (documents read, URLs checked) before anything is written, then store the agent."""
    model = data.model or _default_model(data.provider, runtime)
    await _check_provider(runtime, data.provider, model, data.base_url, has_key=data.api_key is not None)
    documents = await _read_documents(session, runtime, organization_id, data.documents)
    moment = now()
    agent = AgentRepository(session, organization_id).add(
        AiAgent(
            id=new_id("agt"),
            name=data.name,
            instructions=data.instructions,
            provider=data.provider,
            model=model,
            base_url=data.base_url if data.provider != "builtin" else None,
            api_key_encrypted=runtime.secret_box.encrypt(data.api_key) if data.api_key else None,
            serves=_dump(data.serves),
            handoff=_dump(data.handoff),
            enabled=data.enabled,
            knowledge_version=new_id("kv"),
            created_at=moment,
            updated_at=moment,
        )
    )
    await session.flush()
    await _store_knowledge(session, agent, [item.model_dump() for item in data.knowledge_base], documents)
    await session.flush()
    return agent_out(agent)


async def update_agent(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, agent_id: str, data: AgentUpdate
) -> AgentOut:
    repository = AgentRepository(session, organization_id)
    agent = await repository.get(agent_id)
    fields = data.model_fields_set
    if not fields:
        raise InvalidAgent("Nothing to change: give at least one field")
    for name in ("name", "provider", "serves", "handoff", "enabled", "instructions"):
        if name in fields and getattr(data, name) is None:
            raise InvalidAgent(f"{name} cannot be null")
    provider = data.provider if data.provider is not None else agent.provider
    if "model" in fields and data.model is not None:
        model = data.model
    elif "provider" in fields and provider != agent.provider:
        model = _default_model(provider, runtime)
    else:
        model = agent.model
    base_url = data.base_url if "base_url" in fields else agent.base_url
    # The stored key goes only where it was given for: another provider or server must be given a key
    # of its own, or anyone allowed to edit agents could point one at their server and receive it.
    moved = provider != agent.provider or base_url != agent.base_url
    has_key = data.api_key is not None or (
        "api_key" not in fields and agent.api_key_encrypted is not None and not moved
    )
    await _check_provider(
        runtime,
        provider,
        model,
        base_url if base_url != agent.base_url else None,
        has_key=has_key,
        key_kept_back=moved and agent.api_key_encrypted is not None,
    )
    documents = (
        await _read_documents(session, runtime, organization_id, data.documents) if data.documents is not None else None
    )
    if data.name is not None:
        agent.name = data.name
    if data.instructions is not None:
        agent.instructions = data.instructions
    if moved and "api_key" not in fields:
        agent.api_key_encrypted = None  # one server's key is never sent to another
    agent.provider, agent.model = provider, model
    agent.base_url = base_url if provider != "builtin" else None
    if "api_key" in fields:
        agent.api_key_encrypted = runtime.secret_box.encrypt(data.api_key) if data.api_key else None
    if provider == "builtin":
        agent.api_key_encrypted = None
    if data.serves is not None:
        agent.serves = _dump(data.serves)
    if data.handoff is not None:
        agent.handoff = _dump(data.handoff)
    if data.enabled is not None:
        agent.enabled = data.enabled
    if data.knowledge_base is not None or documents is not None:
        knowledge = (
            [item.model_dump() for item in data.knowledge_base]
            if data.knowledge_base is not None
            else list(agent.knowledge_base or [])
        )
        if documents is None:
            documents = await _kept_documents(repository, agent)
        await repository.drop_passages(agent.id)
        await _store_knowledge(session, agent, knowledge, documents)
    agent.updated_at = max(now(), agent.updated_at)
    await session.flush()
    if not agent.enabled:
        await _end_runs(session, organization_id, agent.id, reason="disabled")
    return agent_out(agent)


async def add_document(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, agent_id: str, document: DocumentIn
) -> AgentOut:
    """Add one document to the agent's knowledge, keeping the others."""
    repository = AgentRepository(session, organization_id)
    agent = await repository.get(agent_id)
    kept = await _kept_documents(repository, agent)
    if len(kept) >= MAX_DOCUMENTS:
        raise InvalidAgent(f"An agent has at most {MAX_DOCUMENTS} documents; remove one with PATCH first")
    added = await _read_documents(session, runtime, organization_id, [document])
    await repository.drop_passages(agent.id)
    await _store_knowledge(session, agent, list(agent.knowledge_base or []), kept + added)
    agent.updated_at = max(now(), agent.updated_at)
    await session.flush()
    return agent_out(agent)


async def delete_agent(session: AsyncSession, *, organization_id: str, agent_id: str) -> None:
    """Delete the agent, its passages and its runs; messages it sent keep its id as history."""
    agent = await AgentRepository(session, organization_id).get(agent_id)
    await session.delete(agent)
    await session.flush()


async def list_runs(session: AsyncSession, *, organization_id: str, agent_id: str, page: PageRequest) -> Page[RunOut]:
    await AgentRepository(session, organization_id).get(agent_id)
    repository = RunRepository(session, organization_id)
    runs, total = await repository.page(repository.for_agent(agent_id), page)
    return Page.of([RunOut.model_validate(run) for run in runs], request=page, total=total)


async def _end_runs(session: AsyncSession, organization_id: str, agent_id: str, *, reason: str) -> None:
    runs = await session.scalars(
        RunRepository(session, organization_id)
        .select()
        .where(AiAgentRun.agent_id == agent_id, AiAgentRun.status != "ended")
    )
    for run in runs:
        run.status, run.ended_at = "ended", now()
        if run.stop_reason is None:
            run.stop_reason, run.stopped_at = reason, run.ended_at


def _dump(model: Serves | Handoff) -> dict[str, Any]:
    return dump(model)


def _default_model(provider: str, runtime: Runtime) -> str:
    if provider == "builtin":
        return "semantic" if retrieval.semantic_available(runtime.settings.ai_agents.semantic_ranking) else "lexical"
    raise InvalidAgent(f"Provider '{provider}' needs a model, such as gpt-4o-mini or claude-sonnet-4-5")


async def _check_provider(
    runtime: Runtime,
    provider: str,
    model: str,
    base_url: str | None,
    *,
    has_key: bool,
    key_kept_back: bool = False,
) -> None:
    """Refuse a model the provider doesn't have, a missing key, or a `base_url` (a new one) that isn't public.

    The base URL's host is resolved and every address checked, as a webhook target's is; each model
    call checks and pins it again (providers/http.py), since DNS answers change.
    """
    if provider == "builtin":
        if model not in BUILTIN_MODELS:
            raise InvalidAgent(f"The builtin provider's model is 'lexical' or 'semantic', not '{model}'")
        if model == "semantic" and not retrieval.semantic_available(runtime.settings.ai_agents.semantic_ranking):
            raise InvalidAgent(
                "Semantic ranking is not available on this server: install kaanha[semantic] (and leave "
                "KAANHA_AI_AGENTS__SEMANTIC_RANKING on), or use model 'lexical'"
            )
        return
    if not has_key:
        if key_kept_back:
            raise InvalidAgent(
                "Give the apiKey again when changing provider or baseUrl: the stored key is only sent to the "
                "server it was given for"
            )
        raise InvalidAgent(f"Provider '{provider}' needs an apiKey")
    if base_url is not None:
        await check_target_url(runtime, base_url)


async def _read_documents(
    session: AsyncSession, runtime: Runtime, organization_id: str, documents: list[DocumentIn]
) -> list[tuple[dict[str, Any], list[str]]]:
    """Each document's description and passages; uploads are read from the media store."""
    read = []
    media = MediaRepository(session, organization_id)
    for number, document in enumerate(documents, start=1):
        if document.media_id is not None:
            upload = await media.get(document.media_id)
            name = document.name or upload.filename or upload.id
            data = await asyncio.to_thread(runtime.media_store.path_for(upload.sha256).read_bytes)
            source, text = await asyncio.to_thread(extract_text, data, mime_type=upload.mime_type, name=name)
        else:
            name, source, text = document.name or f"Document {number}", "text", document.text or ""
        passages = split_passages(text)
        description = {
            "id": new_id("doc"),
            "name": name,
            "source": source,
            "mediaId": document.media_id,
            "characters": len(text),
            "passages": len(passages),
        }
        read.append((description, passages))
    return read


async def _kept_documents(repository: AgentRepository, agent: AiAgent) -> list[tuple[dict[str, Any], list[str]]]:
    """The agent's current documents with their passages, for a change of the knowledge base alone."""
    by_document: dict[str, list[str]] = {}
    for passage in await repository.passages(agent.id):
        if passage.document_id:
            by_document.setdefault(passage.document_id, []).append(passage.text)
    return [(document, by_document.get(document["id"], [])) for document in agent.documents or []]


async def _store_knowledge(
    session: AsyncSession,
    agent: AiAgent,
    knowledge: list[dict[str, Any]],
    documents: list[tuple[dict[str, Any], list[str]]],
) -> None:
    agent.knowledge_base = knowledge
    agent.documents = [description for description, _ in documents]
    agent.knowledge_version = new_id("kv")
    rows = [
        AiAgentPassage(
            id=new_id("psg"),
            organization_id=agent.organization_id,
            agent_id=agent.id,
            position=position,
            source="knowledge_base",
            question=item["question"],
            text=item["answer"],
        )
        for position, item in enumerate(knowledge)
    ]
    for description, passages in documents:
        for text in passages:
            rows.append(
                AiAgentPassage(
                    id=new_id("psg"),
                    organization_id=agent.organization_id,
                    agent_id=agent.id,
                    position=len(rows),
                    source="document",
                    document_id=description["id"],
                    text=text,
                )
            )
    session.add_all(rows)


# --- answering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the agent does about a customer's message: reply, or hand over (saying `reply`) for `reason`."""

    reply: str
    handoff: bool
    reason: str | None
    confidence: float
    hits: list[retrieval.Hit] = field(default_factory=list)
    note: str | None = None


def provider_for(agent: AiAgent, runtime: Runtime) -> AgentProvider:
    settings = runtime.settings.ai_agents
    if agent.provider == "builtin":
        return BuiltinProvider()
    key = runtime.secret_box.decrypt(agent.api_key_encrypted or "")
    options: dict[str, Any] = {
        "api_key": key,
        "timeout": settings.request_timeout_seconds,
        "connect_timeout": settings.connect_timeout_seconds,
        # Every call's address is checked and pinned, unless private URLs are allowed (development).
        "resolver": None if runtime.settings.allow_private_urls else runtime.resolver,
    }
    if agent.provider == "anthropic":
        return AnthropicProvider(runtime.http, base_url=agent.base_url or settings.anthropic_api_url, **options)
    return OpenAIProvider(runtime.http, base_url=agent.base_url or settings.openai_api_url, **options)


def uses_semantic(agent: AiAgent, runtime: Runtime) -> bool:
    wanted = agent.model == "semantic" if agent.provider == "builtin" else True
    return wanted and retrieval.semantic_available(runtime.settings.ai_agents.semantic_ranking)


@dataclass(frozen=True)
class Knowledge:
    """An agent's knowledge as read in a transaction: its cached index, or the passages to build it from."""

    key: tuple[str, str]
    semantic: bool
    index: retrieval.KnowledgeIndex | None
    passages: list[retrieval.Passage]


async def read_knowledge(session: AsyncSession, agent: AiAgent, runtime: Runtime) -> Knowledge:
    """Inside a transaction, and cheap: the passage rows are loaded only when no index is cached.

    Build the index with `knowledge_index` after the transaction ends: ranking (and embedding, with
    the semantic extra) takes CPU time no lock should wait for.
    """
    key, semantic = (agent.id, agent.knowledge_version), uses_semantic(agent, runtime)
    cached = retrieval.cached_index(key, semantic=semantic)
    if cached is not None:
        return Knowledge(key=key, semantic=semantic, index=cached, passages=[])
    document_names = {document["id"]: document["name"] for document in agent.documents or []}
    rows = await AgentRepository(session, agent.organization_id).passages(agent.id)
    passages = [
        retrieval.Passage(
            id=row.id,
            source=row.source,
            text=row.text,
            question=row.question,
            answer=row.text if row.question else None,
            document_id=row.document_id,
            document_name=document_names.get(row.document_id or ""),
        )
        for row in rows
    ]
    return Knowledge(key=key, semantic=semantic, index=None, passages=passages)


async def knowledge_index(knowledge: Knowledge) -> retrieval.KnowledgeIndex:
    """The index of `knowledge`, built in a thread unless it was cached; call it with no transaction open."""
    if knowledge.index is not None:
        return knowledge.index
    return await retrieval.build_index(knowledge.key, knowledge.passages, semantic=knowledge.semantic)


async def decide(
    runtime: Runtime,
    agent: AiAgent,
    index: retrieval.KnowledgeIndex,
    *,
    question: str,
    history: list[Turn],
    bot_replies: int,
) -> Decision:
    """Answer `question` as `agent` would, or hand over: words, too many replies, low confidence, failure.

    Cheap rules come first, so a customer asking for a person never waits for a model. Touches no
    database: the caller holds no transaction while a model thinks.
    """
    handoff = Handoff.model_validate(agent.handoff or {})
    keyword = handoff_keyword(question, handoff.keywords)
    if keyword is not None:
        return _handover(handoff, "keyword", f'The customer asked for a person ("{keyword}").')
    if bot_replies >= handoff.max_bot_replies:
        return _handover(
            handoff, "max_replies", f"The agent has answered {bot_replies} times in a row; a person should take over."
        )
    small_talk = is_small_talk(question)
    hits = [] if small_talk else await retrieval.search(index, question, limit=PASSAGES_GIVEN)
    confidence = 1.0 if small_talk else (hits[0].confidence if hits else 0.0)
    if not small_talk and confidence < handoff.confidence_threshold:
        return _handover(
            handoff,
            "low_confidence",
            f"No knowledge matched well enough (confidence {confidence:.2f}, threshold "
            f"{handoff.confidence_threshold:.2f}).",
            confidence=confidence,
            hits=hits,
        )
    request = AnswerRequest(
        agent_name=agent.name,
        instructions=agent.instructions,
        model=agent.model,
        question=question,
        history=history,
        passages=hits,
        small_talk=small_talk,
    )
    try:
        answer = await _ask_with_one_retry(provider_for(agent, runtime), request, runtime)
    except ProviderFailure as failure:
        logger.warning("agent %s: the %s model failed twice: %s", agent.id, agent.provider, failure)
        return _handover(
            handoff,
            "provider_error",
            f"The {agent.provider} model could not answer: {failure}.",
            confidence=confidence,
            hits=hits,
        )
    if answer.text is None:
        return _handover(
            handoff, "low_confidence", "The model found no answer in the knowledge.", confidence=confidence, hits=hits
        )
    return Decision(reply=answer.text, handoff=False, reason=None, confidence=confidence, hits=hits)


async def _ask_with_one_retry(provider: AgentProvider, request: AnswerRequest, runtime: Runtime) -> Any:
    """One retry for a retryable failure (after the provider's Retry-After, if short); then give up."""
    try:
        return await provider.answer(request)
    except ProviderFailure as failure:
        limit = runtime.settings.ai_agents.max_retry_wait_seconds
        if not failure.retryable or (failure.retry_after or 0) > limit:
            raise
        if failure.retry_after:
            await asyncio.sleep(failure.retry_after)
        return await provider.answer(request)


def _handover(
    handoff: Handoff,
    reason: str,
    note: str,
    *,
    confidence: float = 0.0,
    hits: list[retrieval.Hit] | None = None,
) -> Decision:
    return Decision(
        reply=handoff.message, handoff=True, reason=reason, confidence=confidence, hits=hits or [], note=note
    )


async def test_agent(runtime: Runtime, *, organization_id: str, agent_id: str, question: str) -> TestAnswer:
    """`POST /ai-agents/{id}/test`: the answer the agent would give to a first message, sending nothing."""
    async with runtime.database.sessions() as session:
        agent = await AgentRepository(session, organization_id).get(agent_id)
        knowledge = await read_knowledge(session, agent, runtime)
    decision = await decide(
        runtime, agent, await knowledge_index(knowledge), question=question, history=[], bot_replies=0
    )
    return TestAnswer(
        reply=decision.reply,
        handoff=decision.handoff,
        reason=decision.reason,
        confidence=round(decision.confidence, 4),
        passages=[
            PassageOut(
                source=hit.passage.source,
                question=hit.passage.question,
                text=hit.passage.text,
                document_id=hit.passage.document_id,
                document_name=hit.passage.document_name,
                confidence=hit.confidence,
            )
            for hit in decision.hits
        ],
    )


# --- counts ---------------------------------------------------------------------------------------


async def agent_counts(
    session: AsyncSession, *, organization_id: str, start: datetime, end: datetime
) -> list[AgentCounts]:
    """Per agent, in [start, end): conversations it started handling, messages it sent, handoffs by reason.

    Every agent of the organization is listed, with zeros when it did nothing. Replies include the
    polite message of a handoff: it is a message the agent sent.
    """
    agents = list(
        await session.scalars(
            AgentRepository(session, organization_id).select().order_by(AiAgent.created_at, AiAgent.id)
        )
    )
    handled_rows = await session.execute(
        select(AiAgentRun.agent_id, func.count())
        .where(
            AiAgentRun.organization_id == organization_id,
            AiAgentRun.started_at >= start,
            AiAgentRun.started_at < end,
        )
        .group_by(AiAgentRun.agent_id)
    )
    handled: dict[str, int] = {row[0]: row[1] for row in handled_rows}
    reply_rows = await session.execute(
        select(Message.ai_agent_id, func.count())
        .where(
            Message.ai_agent_id.is_not(None),
            Message.organization_id == organization_id,
            Message.created_at >= start,
            Message.created_at < end,
        )
        .group_by(Message.ai_agent_id)
    )
    replies: dict[str | None, int] = {row[0]: row[1] for row in reply_rows}
    handoffs: dict[str, dict[str, int]] = {}
    handoff_rows = await session.execute(
        select(AiAgentRun.agent_id, AiAgentRun.handoff_reason, func.count())
        .where(
            AiAgentRun.organization_id == organization_id,
            AiAgentRun.handed_off_at >= start,
            AiAgentRun.handed_off_at < end,
        )
        .group_by(AiAgentRun.agent_id, AiAgentRun.handoff_reason)
    )
    for agent_id, reason, count in handoff_rows:
        handoffs.setdefault(agent_id, {})[reason or "unknown"] = count
    return [
        AgentCounts(
            agent_id=agent.id,
            name=agent.name,
            conversations_handled=handled.get(agent.id, 0),
            replies_sent=replies.get(agent.id, 0),
            handoffs=sum(handoffs.get(agent.id, {}).values()),
            handoffs_by_reason=handoffs.get(agent.id, {}),
        )
        for agent in agents
    ]

"""The `ai_agents.reply` job: read the conversation, think outside any transaction, then reply or hand over.

Three steps, like a send: (1) a transaction reads what the agent needs and checks it should still
answer; (2) with no transaction open, the knowledge index is built if this process hasn't it (in a
thread), the read receipt and typing indicator go out, and the model thinks (it may take seconds);
(3) a transaction locks the conversation, claims the answer with a conditional update on the run
(so a duplicate job, or a job for an older message, stands down) and queues the reply through the
messages service, or hands the conversation to people.

Locks are taken conversation first, then run, as conversations.update_conversation takes them: an
assignment and an agent's answer then serialize on PostgreSQL (one waits for the other, and sees
it) instead of the agent answering a conversation a person took a moment before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.ai_agents.providers.base import Turn
from kaanha.ai_agents.repository import AgentRepository, RunRepository
from kaanha.ai_agents.rules import question_of
from kaanha.ai_agents.schemas import Handoff
from kaanha.ai_agents.service import Decision, Knowledge, decide, knowledge_index, read_knowledge
from kaanha.ai_agents.triggers import REPLY_JOB
from kaanha.contacts.repository import ContactRepository
from kaanha.conversations.repository import ConversationRepository
from kaanha.conversations.window import is_window_open
from kaanha.errors import KaanhaError
from kaanha.events import types as event_types
from kaanha.events.service import emit
from kaanha.kit.clock import now
from kaanha.messages.repository import MessageRepository
from kaanha.messages.schemas import SendRequest
from kaanha.messages.service import send_message
from kaanha.models import AiAgent, AiAgentRun, Contact, Conversation, Job, Message, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.provider import ProviderError
from kaanha.whatsapp.providers import provider_for
from kaanha.worker.runner import Lease, stepwise_task

logger = logging.getLogger("kaanha.ai_agents")

# Messages of the conversation the agent reads before the customer's latest.
HISTORY_MESSAGES = 10
MAX_TEXT = 4096


@dataclass
class _Context:
    run: AiAgentRun
    agent: AiAgent
    conversation: Conversation
    contact: Contact
    message: Message
    question: str | None
    history: list[Turn]
    connection: WhatsAppConnection | None
    knowledge: Knowledge


async def _give_up(session: AsyncSession, runtime: Runtime, job: Job, error: Exception) -> None:
    """A reply that can never be made (a bug of ours) must not leave the customer in silence: hand over.

    The customer gets the agent's handoff message when the 24-hour window allows it, as for any
    other handoff; the conversation is set for people either way.
    """
    organization_id = job.organization_id or ""
    run = await RunRepository(session, organization_id).find(str(job.payload.get("runId", "")))
    if run is None or run.status != "active":
        return
    conversation = await _locked_conversation(session, organization_id, run.conversation_id)
    await session.refresh(run)  # as it is now that the conversation is ours: a person may have taken it
    if run.status != "active":
        return
    message = await MessageRepository(session, organization_id).find(str(job.payload.get("messageId", "")))
    if message is not None and (
        _answered(run, message) or await _superseded(session, organization_id, run.conversation_id, message)
    ):
        return  # another copy of the job answered, or a later message's job (or a person) has it
    note = f"The agent failed to reply: {error}"[:1000]
    agent = await AgentRepository(session, organization_id).find(run.agent_id)
    if conversation is not None and agent is not None and _for_the_agent(conversation):
        contact = await ContactRepository(session, organization_id).get(conversation.contact_id)
        if is_window_open(contact.last_inbound_at):
            text = Handoff.model_validate(agent.handoff or {}).message
            try:
                # In a savepoint: whatever failed the job may fail this too, and the handoff must still happen.
                async with session.begin_nested():
                    await _send(session, runtime, organization_id, contact, agent.id, text)
            except Exception as failure:  # any failure to send still hands over, with why
                logger.warning("agent %s: the handoff message was not sent: %s", agent.id, failure)
                note = f"{note} The handoff message could not be sent either."[:1000]
    await _stop(session, run, reason="provider_error", note=note)


@stepwise_task(REPLY_JOB, on_give_up=_give_up)
async def reply(runtime: Runtime, job: Job, lease: Lease) -> None:
    organization_id = job.organization_id or ""
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        context = await _read(session, runtime, organization_id, job.payload)
    if context is None:
        return
    index = await knowledge_index(context.knowledge)
    await _show_reading(runtime, context)
    if context.question is None:
        handoff = Handoff.model_validate(context.agent.handoff or {})
        decision = Decision(
            reply=handoff.message,
            handoff=True,
            reason="unsupported_message",
            confidence=0.0,
            note=f"The customer sent a '{context.message.type}' message, which the agent can't read.",
        )
    else:
        decision = await decide(
            runtime,
            context.agent,
            index,
            question=context.question,
            history=context.history,
            bot_replies=context.run.bot_replies,
        )
    async with runtime.database.transaction() as session:
        await lease.hold(session)
        await _act(session, runtime, organization_id, context, decision)


async def _read(
    session: AsyncSession, runtime: Runtime, organization_id: str, payload: dict[str, Any]
) -> _Context | None:
    run = await RunRepository(session, organization_id).find(str(payload.get("runId", "")))
    message = await MessageRepository(session, organization_id).find(str(payload.get("messageId", "")))
    if run is None or message is None or run.status != "active":
        return None
    if _answered(run, message):
        return None  # answered already (this job ran before), or a later message was
    agent = await AgentRepository(session, organization_id).find(run.agent_id)
    conversation = await ConversationRepository(session, organization_id).find(run.conversation_id)
    if agent is None or not agent.enabled or conversation is None:
        return None
    if conversation.assignee_id is not None or conversation.status != "OPEN":
        return None
    if await _superseded(session, organization_id, conversation.id, message):
        return None
    contact = await ContactRepository(session, organization_id).get(message.contact_id)
    recent = list(
        await session.scalars(
            select(Message)
            .where(
                Message.organization_id == organization_id,
                Message.conversation_id == conversation.id,
                Message.created_at <= message.created_at,
                Message.id != message.id,
            )
            .order_by(Message.created_at.desc())
            .limit(HISTORY_MESSAGES)
        )
    )
    history = [
        Turn(role="customer" if item.direction == "inbound" else "agent", text=text)
        for item in reversed(recent)
        if (text := question_of(item)) is not None
    ]
    return _Context(
        run=run,
        agent=agent,
        conversation=conversation,
        contact=contact,
        message=message,
        question=question_of(message),
        history=history,
        connection=await session.get(WhatsAppConnection, organization_id),
        knowledge=await read_knowledge(session, agent, runtime),
    )


def _answered(run: AiAgentRun, message: Message) -> bool:
    return run.answered_through is not None and (run.answered_through, run.answered_message_id or "") >= (
        message.created_at,
        message.id,
    )


async def _superseded(session: AsyncSession, organization_id: str, conversation_id: str, message: Message) -> bool:
    """A newer customer message (its own job answers both), or a person or keyword reply, came after this one."""
    later = await session.scalar(
        select(Message.id)
        .where(
            Message.organization_id == organization_id,
            Message.conversation_id == conversation_id,
            _after(message),
            or_(Message.direction == "inbound", Message.ai_agent_id.is_(None)),
            Message.type != "reaction",
        )
        .limit(1)
    )
    return later is not None


def _after(message: Message) -> ColumnElement[bool]:
    """Messages stored after `message`: a later time, or the same second (WhatsApp's resolution) and a later id."""
    return or_(
        Message.created_at > message.created_at,
        and_(Message.created_at == message.created_at, Message.id > message.id),
    )


async def _show_reading(runtime: Runtime, context: _Context) -> None:
    """Blue ticks and "typing…" on the customer's phone while the agent works; a failure changes nothing else."""
    if context.connection is None or not context.message.whatsapp_message_id:
        return
    try:
        await provider_for(context.connection, runtime).mark_read(context.message.whatsapp_message_id, typing=True)
    except ProviderError as error:
        logger.info("agent %s: read receipt not sent: %s", context.agent.id, error)


async def _act(
    session: AsyncSession, runtime: Runtime, organization_id: str, context: _Context, decision: Decision
) -> None:
    # The conversation first: an assignment in flight holds it until it commits, and we then see it.
    conversation = await _locked_conversation(session, organization_id, context.conversation.id)
    if conversation is None or not _for_the_agent(conversation):
        return
    claimed = await session.execute(
        update(AiAgentRun)
        .where(
            AiAgentRun.organization_id == organization_id,
            AiAgentRun.id == context.run.id,
            AiAgentRun.status == "active",
            or_(
                AiAgentRun.answered_through.is_(None),
                AiAgentRun.answered_through < context.message.created_at,
                and_(
                    AiAgentRun.answered_through == context.message.created_at,
                    AiAgentRun.answered_message_id < context.message.id,
                ),
            ),
        )
        .values(answered_through=context.message.created_at, answered_message_id=context.message.id, updated_at=now())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return  # stopped meanwhile (a person was assigned), or answered by another copy of this job
    if await _superseded(session, organization_id, conversation.id, context.message):
        return
    run = await RunRepository(session, organization_id).get(context.run.id)
    contact = await ContactRepository(session, organization_id).get(context.contact.id)
    if not is_window_open(contact.last_inbound_at):
        await _stop(
            session, run, reason="window_closed", note="The 24-hour window closed before the agent could reply."
        )
        return
    try:
        await _send(session, runtime, organization_id, contact, context.agent.id, decision.reply)
    except KaanhaError as error:
        # Refused by our own rules (the per-recipient limit, say): people answer instead.
        await _stop(session, run, reason="send_failed", note=f"The agent's reply could not be sent: {error.message}")
        return
    if decision.handoff:
        await _stop(session, run, reason=decision.reason or "low_confidence", note=decision.note or "")
        return
    run.bot_replies += 1


async def _send(
    session: AsyncSession, runtime: Runtime, organization_id: str, contact: Contact, agent_id: str, text: str
) -> None:
    await send_message(
        session,
        runtime=runtime,
        organization_id=organization_id,
        request=SendRequest(to=contact.phone, type="text", text=text[:MAX_TEXT]),
        ai_agent_id=agent_id,
    )


async def _locked_conversation(
    session: AsyncSession, organization_id: str, conversation_id: str
) -> Conversation | None:
    """The conversation as committed now, locked for this transaction.

    FOR UPDATE on PostgreSQL; on SQLite the write lock the lease took already serializes writers.
    """
    found: Conversation | None = await session.scalar(
        ConversationRepository(session, organization_id)
        .select()
        .where(Conversation.id == conversation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found


def _for_the_agent(conversation: Conversation) -> bool:
    return conversation.assignee_id is None and conversation.status == "OPEN"


async def _stop(session: AsyncSession, run: AiAgentRun, *, reason: str, note: str) -> None:
    """Hand the conversation to people: the run stops with why, the conversation shows it until a person
    takes it (`handoff` on GET /chats), and `conversation.handed_off` says so.

    The caller holds the conversation's lock (see the module's note on lock order).
    """
    moment = now()
    run.status, run.stop_reason, run.stopped_at = "stopped", "handoff", moment
    run.handoff_reason, run.handoff_note, run.handed_off_at = reason, note[:1000], moment
    run.updated_at = moment
    agent = await AgentRepository(session, run.organization_id).find(run.agent_id)
    at = moment.isoformat().replace("+00:00", "Z")
    conversation = await ConversationRepository(session, run.organization_id).find(run.conversation_id)
    if conversation is not None and _for_the_agent(conversation):
        conversation.handoff = {
            "agentId": run.agent_id,
            "agentName": agent.name if agent else None,
            "reason": reason,
            "note": run.handoff_note,
            "at": at,
        }
        conversation.updated_at = max(moment, conversation.updated_at)
    await session.flush()
    await emit(
        session,
        organization_id=run.organization_id,
        type=event_types.CONVERSATION_HANDED_OFF,
        data={
            "conversationId": run.conversation_id,
            "agentId": run.agent_id,
            "agentName": agent.name if agent else None,
            "reason": reason,
            "note": run.handoff_note,
            "handedOffAt": at,
        },
    )

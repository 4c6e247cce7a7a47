"""Where AI agents hook into the inbox: a customer's message may queue a reply; a person or a resolution stops them.

Imported by messages.service and conversations.service, so it imports neither of them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.ai_agents.repository import AgentRepository, RunRepository
from kaanha.ai_agents.rules import NOT_ADDRESSED, serves
from kaanha.contacts.repository import ContactRepository
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.models import AiAgent, AiAgentRun, Contact, Conversation, Message, Organization
from kaanha.worker.queue import enqueue

REPLY_JOB = "ai_agents.reply"


async def on_inbound_message(
    session: AsyncSession, *, organization_id: str, contact: Contact, conversation: Conversation, message: Message
) -> None:
    """Queue the agent's reply to `message`, in the transaction that stores it, when an agent handles it.

    An agent handles a conversation nobody is assigned to, either already (its run is active) or from
    now on (the oldest enabled agent whose serving rules match). Costs one query when the organization
    has no enabled agent. Duplicates of a message never get here (record_inbound stops them first).
    """
    if message.type in NOT_ADDRESSED or conversation.assignee_id is not None or conversation.status != "OPEN":
        return
    agents = await AgentRepository(session, organization_id).enabled()
    if not agents:
        return
    runs = RunRepository(session, organization_id)
    run = await runs.current(conversation.id)
    if run is not None and run.status != "active":
        return  # stopped: people have the conversation until it is resolved
    tags = set((await ContactRepository(session, organization_id).tags_for([contact.id])).get(contact.id, []))
    timezone = await session.scalar(select(Organization.timezone).where(Organization.id == organization_id))

    def serving(agent: AiAgent) -> bool:
        return serves(agent, tags=tags, at=message.created_at, timezone=timezone or "UTC")

    if run is not None:
        current = next((agent for agent in agents if agent.id == run.agent_id), None)
        if current is None or not serving(current):
            # Business hours began, or the contact's tags or the agent's rules changed: it steps back.
            moment = now()
            run.status, run.stop_reason, run.stopped_at, run.ended_at = "ended", "not_serving", moment, moment
            await session.flush()
            run = None
    if run is None:
        agent = next((agent for agent in agents if serving(agent)), None)
        if agent is None:
            return
        moment = now()
        run = AiAgentRun(
            id=new_id("run"),
            agent_id=agent.id,
            conversation_id=conversation.id,
            status="active",
            bot_replies=0,
            started_at=moment,
            updated_at=moment,
        )
        if not await runs.add_unless_taken(run):
            run = await runs.current(conversation.id)  # started by a concurrent message a moment ago
            if run is None or run.status != "active":
                return
        else:
            conversation.handoff = None  # an agent answers again (the one that handed over was disabled)
    enqueue(
        session,
        kind=REPLY_JOB,
        payload={"runId": run.id, "messageId": message.id},
        organization_id=organization_id,
        max_attempts=3,
    )


async def on_conversation_changed(session: AsyncSession, conversation: Conversation) -> None:
    """A person assigned stops the conversation's agent; resolving the conversation ends its run.

    Either way the conversation's handoff note has done its job: a person has it, or nobody needs to.
    """
    if conversation.handoff is not None and (conversation.assignee_id is not None or conversation.status == "RESOLVED"):
        conversation.handoff = None
    run = await RunRepository(session, conversation.organization_id).current(conversation.id)
    if run is None:
        return
    moment = now()
    if conversation.status == "RESOLVED":
        run.status, run.ended_at = "ended", moment
        if run.stop_reason is None:
            run.stop_reason, run.stopped_at = "resolved", moment
    elif conversation.assignee_id is not None and run.status == "active":
        run.status, run.stop_reason, run.stopped_at = "stopped", "assigned", moment
    run.updated_at = moment
    await session.flush()

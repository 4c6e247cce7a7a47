"""Queries on AI agents, their passages and their runs, bound to one organization."""

from __future__ import annotations

from sqlalchemy import Select, delete, select

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import AiAgent, AiAgentPassage, AiAgentRun


class AgentNotFound(NotFound):
    code = "ai_agent_not_found"


class AgentRepository(TenantRepository[AiAgent]):
    model = AiAgent
    not_found = AgentNotFound
    noun = "AI agent"

    def listing(self) -> Select[AiAgent]:
        return self.select().order_by(AiAgent.created_at.desc(), AiAgent.id.desc())

    async def enabled(self) -> list[AiAgent]:
        """Enabled agents, oldest first: when several serve a conversation, the oldest takes it."""
        found = await self.session.scalars(
            self.select().where(AiAgent.enabled.is_(True)).order_by(AiAgent.created_at, AiAgent.id)
        )
        return list(found)

    async def passages(self, agent_id: str) -> list[AiAgentPassage]:
        found = await self.session.scalars(
            select(AiAgentPassage)
            .where(AiAgentPassage.organization_id == self.organization_id, AiAgentPassage.agent_id == agent_id)
            .order_by(AiAgentPassage.position)
        )
        return list(found)

    async def drop_passages(self, agent_id: str) -> None:
        await self.session.execute(
            delete(AiAgentPassage).where(
                AiAgentPassage.organization_id == self.organization_id, AiAgentPassage.agent_id == agent_id
            )
        )


class RunRepository(TenantRepository[AiAgentRun]):
    model = AiAgentRun
    noun = "AI agent run"

    async def current(self, conversation_id: str) -> AiAgentRun | None:
        """The conversation's run that isn't over (at most one, by a unique index)."""
        found: AiAgentRun | None = await self.session.scalar(
            self.select().where(AiAgentRun.conversation_id == conversation_id, AiAgentRun.status != "ended")
        )
        return found

    def for_agent(self, agent_id: str) -> Select[AiAgentRun]:
        return (
            self.select()
            .where(AiAgentRun.agent_id == agent_id)
            .order_by(AiAgentRun.started_at.desc(), AiAgentRun.id.desc())
        )

"""AI agents, their knowledge split into passages, and what each did in each conversation it handled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class AiAgent(TenantModel):
    __tablename__ = "ai_agents"
    __table_args__ = (Index("ix_ai_agents_organization_id_enabled", "organization_id", "enabled"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(20), default="builtin")
    model: Mapped[str] = mapped_column(String(200))
    # OpenAI-compatible servers only; Anthropic and the builtin provider need none.
    base_url: Mapped[str | None] = mapped_column(String(2048))
    # The model provider's key, encrypted with the SecretBox like Meta's access tokens.
    api_key_encrypted: Mapped[str | None] = mapped_column(String(2000))
    # [{question, answer}] as given; the searchable form is in ai_agent_passages.
    knowledge_base: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # [{id, name, source, mediaId, characters, passages}]: what each document was; its text is in passages.
    documents: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # {tags, onlyOutsideBusinessHours, businessHours}
    serves: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {keywords, confidenceThreshold, maxBotReplies, message}
    handoff: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    # A new value with every change of the knowledge: the key of its search index, cached per process.
    knowledge_version: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class AiAgentPassage(TenantModel):
    """One retrievable piece of an agent's knowledge: a question-and-answer pair, or a part of a document."""

    __tablename__ = "ai_agent_passages"
    __table_args__ = (Index("ix_ai_agent_passages_agent_id_position", "agent_id", "position"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40), ForeignKey("ai_agents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    # "knowledge_base" or "document"
    source: Mapped[str] = mapped_column(String(20))
    document_id: Mapped[str | None] = mapped_column(String(40))
    question: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)


class AiAgentRun(TenantModel):
    """A stretch of one conversation handled by one agent, from the first message it took on.

    `active` while the agent answers; `stopped` once it handed the conversation to people or a person
    was assigned (it stays quiet until the conversation is resolved); `ended` when the conversation was
    resolved (its next message may start a new run) or the agent was disabled.
    """

    __tablename__ = "ai_agent_runs"
    __table_args__ = (
        # One run that isn't over per conversation, so two messages arriving together can't start two.
        Index(
            "uq_ai_agent_runs_one_current_per_conversation",
            "organization_id",
            "conversation_id",
            unique=True,
            sqlite_where=text("status != 'ended'"),
            postgresql_where=text("status != 'ended'"),
        ),
        Index("ix_ai_agent_runs_organization_id_started_at", "organization_id", "started_at"),
        Index("ix_ai_agent_runs_agent_id", "agent_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(40), ForeignKey("ai_agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(String(40), ForeignKey("conversations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="active")
    # The agent's messages since the customer last got a person (the "in a row" of maxBotReplies).
    bot_replies: Mapped[int] = mapped_column(default=0)
    # The newest customer message answered: a job for an older one, or a second copy of a job, stands down.
    answered_through: Mapped[datetime | None] = mapped_column()
    # Its id: WhatsApp's times are whole seconds, so two messages may share one; ids then order them.
    answered_message_id: Mapped[str | None] = mapped_column(String(40))
    handoff_reason: Mapped[str | None] = mapped_column(String(30))
    handoff_note: Mapped[str | None] = mapped_column(String(1000))
    handed_off_at: Mapped[datetime | None] = mapped_column()
    # "handoff", "assigned", "disabled", "not_serving" (its serving rules no longer match), "resolved"
    stop_reason: Mapped[str | None] = mapped_column(String(30))
    stopped_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

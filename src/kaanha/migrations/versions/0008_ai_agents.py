"""AI agents

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import kaanha.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ai_agents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=True),
        sa.Column("api_key_encrypted", sa.String(length=2000), nullable=True),
        sa.Column("knowledge_base", JSON, nullable=False),
        sa.Column("documents", JSON, nullable=False),
        sa.Column("serves", JSON, nullable=False),
        sa.Column("handoff", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("knowledge_version", sa.String(length=40), nullable=False),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_agents_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_agents")),
    )
    op.create_index("ix_ai_agents_organization_id_enabled", "ai_agents", ["organization_id", "enabled"])

    op.create_table(
        "ai_agent_passages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("document_id", sa.String(length=40), nullable=True),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["ai_agents.id"], name=op.f("fk_ai_agent_passages_agent_id_ai_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_agent_passages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_agent_passages")),
    )
    op.create_index("ix_ai_agent_passages_agent_id_position", "ai_agent_passages", ["agent_id", "position"])

    op.create_table(
        "ai_agent_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("bot_replies", sa.Integer(), nullable=False),
        sa.Column("answered_through", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_message_id", sa.String(length=40), nullable=True),
        sa.Column("handoff_reason", sa.String(length=30), nullable=True),
        sa.Column("handoff_note", sa.String(length=1000), nullable=True),
        sa.Column("handed_off_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=30), nullable=True),
        sa.Column("stopped_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["ai_agents.id"], name=op.f("fk_ai_agent_runs_agent_id_ai_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_ai_agent_runs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ai_agent_runs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_agent_runs")),
    )
    op.create_index("ix_ai_agent_runs_agent_id", "ai_agent_runs", ["agent_id"])
    op.create_index("ix_ai_agent_runs_organization_id_started_at", "ai_agent_runs", ["organization_id", "started_at"])
    op.create_index(
        "uq_ai_agent_runs_one_current_per_conversation",
        "ai_agent_runs",
        ["organization_id", "conversation_id"],
        unique=True,
        sqlite_where=sa.text("status != 'ended'"),
        postgresql_where=sa.text("status != 'ended'"),
    )

    # Why an agent handed a conversation to people, while it waits for them.
    op.add_column("conversations", sa.Column("handoff", JSON, nullable=True))

    # Messages an agent sent; existing rows were all sent by people or programs (null).
    op.add_column("messages", sa.Column("ai_agent_id", sa.String(length=40), nullable=True))
    op.create_index(
        "ix_messages_ai_agent_id_created_at",
        "messages",
        ["ai_agent_id", "created_at"],
        sqlite_where=sa.text("ai_agent_id IS NOT NULL"),
        postgresql_where=sa.text("ai_agent_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_ai_agent_id_created_at", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("ai_agent_id")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("handoff")
    op.drop_index("uq_ai_agent_runs_one_current_per_conversation", table_name="ai_agent_runs")
    op.drop_index("ix_ai_agent_runs_organization_id_started_at", table_name="ai_agent_runs")
    op.drop_index("ix_ai_agent_runs_agent_id", table_name="ai_agent_runs")
    op.drop_table("ai_agent_runs")
    op.drop_index("ix_ai_agent_passages_agent_id_position", table_name="ai_agent_passages")
    op.drop_table("ai_agent_passages")
    op.drop_index("ix_ai_agents_organization_id_enabled", table_name="ai_agents")
    op.drop_table("ai_agents")

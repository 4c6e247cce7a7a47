"""analytics: conversation openings and message senders

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kaanha.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One opening per existing conversation, as far as its messages tell: opened when it was created
# (by the customer if their message came first), the customer's first message, our first reply after
# it that is not a broadcast, its assignee, and its resolution if it is resolved. Reopenings before
# this migration are not known (a reopened thread counts as one opening since its creation), nor when
# it was assigned, nor who replied or resolved. So the rows are marked `backfilled`: they count as
# opened and resolved on their dates, but an open thread's opened_at and first response may be
# months old, and response and resolution times leave them out (docs/decisions.md, "Analytics").
BACKFILL = """
INSERT INTO conversation_openings (
    id, organization_id, conversation_id, opened_at, opened_by, backfilled, first_inbound_at,
    first_response_at, first_responder_user_id, assigned_at, first_assignee_id, assignee_id, resolved_at,
    resolved_by_user_id
)
SELECT
    'cop_' || substr(f.id, 5), f.organization_id, f.id, f.created_at,
    CASE WHEN f.first_inbound_at IS NOT NULL
        AND (f.first_outbound_at IS NULL OR f.first_inbound_at <= f.first_outbound_at)
        THEN 'customer' ELSE 'business' END,
    true, f.first_inbound_at,
    (
        SELECT min(o.created_at) FROM messages o
        WHERE o.conversation_id = f.id AND o.direction = 'outbound' AND o.broadcast_id IS NULL
          AND o.created_at >= f.first_inbound_at
    ),
    NULL, NULL, NULL, f.assignee_id,
    CASE WHEN f.status = 'RESOLVED' THEN coalesce(f.resolved_at, f.updated_at) END,
    NULL
FROM (
    SELECT c.id, c.organization_id, c.created_at, c.assignee_id, c.status, c.resolved_at, c.updated_at,
        (
            SELECT min(i.created_at) FROM messages i WHERE i.conversation_id = c.id AND i.direction = 'inbound'
        ) AS first_inbound_at,
        (
            SELECT min(o.created_at) FROM messages o WHERE o.conversation_id = c.id AND o.direction = 'outbound'
        ) AS first_outbound_at
    FROM conversations c
) f
"""


def upgrade() -> None:
    op.create_table(
        "conversation_openings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=40), nullable=False),
        sa.Column("opened_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=10), nullable=False),
        sa.Column("backfilled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("first_inbound_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_responder_user_id", sa.String(length=40), nullable=True),
        sa.Column("assigned_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_assignee_id", sa.String(length=40), nullable=True),
        sa.Column("assignee_id", sa.String(length=40), nullable=True),
        sa.Column("resolved_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.String(length=40), nullable=True),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_openings_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_conversation_openings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_openings")),
    )
    op.execute(BACKFILL)
    with op.batch_alter_table("conversation_openings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_openings_organization_id_conversation_id_open",
            ["organization_id", "conversation_id"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.create_index(
            "ix_conversation_openings_organization_id_assigned_at", ["organization_id", "assigned_at"], unique=False
        )
        batch_op.create_index(
            "ix_conversation_openings_organization_id_first_response_at",
            ["organization_id", "first_response_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_conversation_openings_organization_id_opened_at", ["organization_id", "opened_at"], unique=False
        )
        batch_op.create_index(
            "ix_conversation_openings_organization_id_resolved_at", ["organization_id", "resolved_at"], unique=False
        )

    # A plain ADD COLUMN on both engines (no table rebuild on SQLite): nullable, no foreign key.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_by_user_id", sa.String(length=40), nullable=True))
    # Partial indexes for analytics' failures and per-person counts: each holds a few percent of the
    # messages (none with a sender yet), so building them is one read of the table.
    op.create_index(
        "ix_messages_organization_id_created_at_failed",
        "messages",
        ["organization_id", "created_at"],
        unique=False,
        sqlite_where=sa.text("status = 'failed'"),
        postgresql_where=sa.text("status = 'failed'"),
    )
    op.create_index(
        "ix_messages_organization_id_created_at_by_person",
        "messages",
        ["organization_id", "created_at"],
        unique=False,
        sqlite_where=sa.text("sent_by_user_id IS NOT NULL"),
        postgresql_where=sa.text("sent_by_user_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_organization_id_created_at_by_person", table_name="messages")
    op.drop_index("ix_messages_organization_id_created_at_failed", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("sent_by_user_id")
    with op.batch_alter_table("conversation_openings", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_openings_organization_id_resolved_at")
        batch_op.drop_index("ix_conversation_openings_organization_id_opened_at")
        batch_op.drop_index("ix_conversation_openings_organization_id_first_response_at")
        batch_op.drop_index("ix_conversation_openings_organization_id_assigned_at")
        batch_op.drop_index(
            "ix_conversation_openings_organization_id_conversation_id_open",
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
    op.drop_table("conversation_openings")

"""templates, opt-in and broadcasts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:11:39.144658
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import kaanha.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get the defaults of the new NOT NULL columns from server defaults.
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("template_name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=15), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column(
            "components", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "audience", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("dispatch_job_id", sa.String(length=40), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("scheduled_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paused_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_broadcasts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcasts_organization_id_created_at", ["organization_id", "created_at"], unique=False
        )

    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("skip_reason", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("queued_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replied_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_recipients_broadcast_id_broadcasts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_broadcast_recipients_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_broadcast_recipients_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "contact_id", name=op.f("pk_broadcast_recipients")),
    )
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcast_recipients_broadcast_id_status_contact_id",
            ["broadcast_id", "status", "contact_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_broadcast_recipients_organization_id_contact_id", ["organization_id", "contact_id"], unique=False
        )

    op.create_table(
        "consent_changes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_consent_changes_contact_id_contacts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_consent_changes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.create_index("ix_consent_changes_contact_id_created_at", ["contact_id", "created_at"], unique=False)

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opted_in_source", sa.String(length=20), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("broadcast_id", sa.String(length=40), nullable=True))
        batch_op.create_index(
            "ix_messages_broadcast_id_status",
            ["broadcast_id", "status"],
            unique=False,
            sqlite_where=sa.text("broadcast_id IS NOT NULL"),
            postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        )

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "opt_out_keywords",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="[]",
            )
        )
        batch_op.add_column(
            sa.Column(
                "opt_in_keywords",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="[]",
            )
        )
        batch_op.add_column(sa.Column("opt_out_reply", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("opt_in_reply", sa.String(length=1024), nullable=True))

    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("parameter_format", sa.String(length=10), nullable=False, server_default="POSITIONAL")
        )

    with op.batch_alter_table("whatsapp_connections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("templates_synced_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True)
        )

    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("whatsapp_connections", schema=None) as batch_op:
        batch_op.drop_column("templates_synced_at")

    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_column("parameter_format")

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("opt_in_reply")
        batch_op.drop_column("opt_out_reply")
        batch_op.drop_column("opt_in_keywords")
        batch_op.drop_column("opt_out_keywords")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_broadcast_id_status",
            sqlite_where=sa.text("broadcast_id IS NOT NULL"),
            postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        )
        batch_op.drop_column("broadcast_id")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("opted_in_source")

    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_changes_contact_id_created_at")

    op.drop_table("consent_changes")
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcast_recipients_organization_id_contact_id")
        batch_op.drop_index("ix_broadcast_recipients_broadcast_id_status_contact_id")

    op.drop_table("broadcast_recipients")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_index("ix_broadcasts_organization_id_created_at")

    op.drop_table("broadcasts")
    # ### end Alembic commands ###

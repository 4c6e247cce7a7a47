"""payment links and payment settings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kaanha.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_settings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=10), nullable=False),
        sa.Column("upi_id", sa.String(length=255), nullable=True),
        sa.Column("payee_name", sa.String(length=100), nullable=True),
        sa.Column("notify_on_paid", sa.Boolean(), nullable=False),
        sa.Column("paid_message", sa.Text(), nullable=True),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_payment_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_settings")),
        sa.UniqueConstraint("organization_id", name=op.f("uq_payment_settings_organization_id")),
    )

    op.create_table(
        "payment_gateway_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=10), nullable=False),
        sa.Column("key_id", sa.String(length=255), nullable=True),
        sa.Column("key_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("webhook_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_payment_gateway_accounts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_gateway_accounts")),
        sa.UniqueConstraint(
            "organization_id", "gateway", name=op.f("uq_payment_gateway_accounts_organization_id_gateway")
        ),
    )

    op.create_table(
        "payment_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("gateway", sa.String(length=10), nullable=False),
        sa.Column("gateway_link_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payee_upi_id", sa.String(length=255), nullable=True),
        sa.Column("payee_name", sa.String(length=100), nullable=True),
        sa.Column("expires_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_payment_links_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_payment_links_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_links")),
    )
    with op.batch_alter_table("payment_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_links_organization_id_status_created_at",
            ["organization_id", "status", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_payment_links_organization_id_created_at", ["organization_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_payment_links_organization_id_contact_id", ["organization_id", "contact_id"], unique=False
        )
        batch_op.create_index(
            "ix_payment_links_organization_id_gateway_link_id", ["organization_id", "gateway_link_id"], unique=False
        )
        batch_op.create_index("ix_payment_links_status_expires_at", ["status", "expires_at"], unique=False)

    op.create_table(
        "payment_gateway_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payment_link_id", sa.String(length=40), nullable=True),
        sa.Column("received_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_payment_gateway_events_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_gateway_events")),
        sa.UniqueConstraint(
            "organization_id",
            "gateway",
            "event_id",
            name=op.f("uq_payment_gateway_events_organization_id_gateway_event_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("payment_gateway_events")
    with op.batch_alter_table("payment_links", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_links_status_expires_at")
        batch_op.drop_index("ix_payment_links_organization_id_gateway_link_id")
        batch_op.drop_index("ix_payment_links_organization_id_contact_id")
        batch_op.drop_index("ix_payment_links_organization_id_created_at")
        batch_op.drop_index("ix_payment_links_organization_id_status_created_at")
    op.drop_table("payment_links")
    op.drop_table("payment_gateway_accounts")
    op.drop_table("payment_settings")

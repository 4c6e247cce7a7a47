"""quick replies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kaanha.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quick_replies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("shortcut", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=4096), nullable=False),
        sa.Column("media_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kaanha.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_quick_replies_media_id_media")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_quick_replies_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quick_replies")),
        sa.UniqueConstraint("organization_id", "shortcut", name=op.f("uq_quick_replies_organization_id_shortcut")),
    )


def downgrade() -> None:
    op.drop_table("quick_replies")

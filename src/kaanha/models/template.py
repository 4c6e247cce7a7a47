"""Message templates, the only messages WhatsApp lets a business send outside the 24-hour window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column, updated_at_column


class Template(TenantModel):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("organization_id", "name", "language"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    components: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # POSITIONAL ({{1}}) or NAMED ({{first_name}}) placeholders, as Meta's `parameter_format`.
    parameter_format: Mapped[str] = mapped_column(String(10), default="POSITIONAL")
    rejected_reason: Mapped[str | None] = mapped_column(String(200))
    quality_score: Mapped[str | None] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

"""Uploaded and received media: metadata per organization; bytes stored once per sha256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column


class Media(TenantModel):
    __tablename__ = "media"
    __table_args__ = (Index("ix_media_organization_id_sha256", "organization_id", "sha256"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column()
    filename: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at_column()

"""Our media as uploaded to Meta: the Meta media id is reused until it expires (30 days)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column


class ProviderMedia(TenantModel):
    __tablename__ = "provider_media"
    __table_args__ = (UniqueConstraint("organization_id", "media_id", "phone_number_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(40), ForeignKey("media.id", ondelete="CASCADE"))
    phone_number_id: Mapped[str] = mapped_column(String(64))
    provider_media_id: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()

"""Raw provider webhook payloads, stored before they are answered and processed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import Model, created_at_column


class InboundEvent(Model):
    __tablename__ = "inbound_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(20))
    # Meta retries a POST with the same bytes: their hash makes the retry a no-op.
    body_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column()

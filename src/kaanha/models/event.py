"""The organization's event log: what changed, written in the transaction that changed it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kaanha.models.base import TenantModel, created_at_column


class Event(TenantModel):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_organization_id_seq", "organization_id", "seq"),)

    # The stream's order and resume point; SQLite autoincrements only an INTEGER primary key.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()

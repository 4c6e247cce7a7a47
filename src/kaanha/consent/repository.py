"""Opt-in history queries."""

from __future__ import annotations

from sqlalchemy import Select

from kaanha.kit.repository import TenantRepository
from kaanha.models import ConsentChange


class ConsentChangeRepository(TenantRepository[ConsentChange]):
    model = ConsentChange
    noun = "Consent change"

    def history(self, contact_id: str) -> Select[ConsentChange]:
        """A contact's changes, newest first (served by the (contact_id, created_at) index)."""
        return (
            self.select()
            .where(ConsentChange.contact_id == contact_id)
            .order_by(ConsentChange.created_at.desc(), ConsentChange.id.desc())
        )

"""Conversation queries."""

from __future__ import annotations

from sqlalchemy import Select

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Conversation


class ConversationNotFound(NotFound):
    code = "conversation_not_found"


class ConversationRepository(TenantRepository[Conversation]):
    model = Conversation
    not_found = ConversationNotFound
    noun = "Conversation"

    def listing(self, *, status: str | None) -> Select[Conversation]:
        query = self.select()
        if status:
            query = query.where(Conversation.status == status)
        return query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())

    async def latest_for_contact(self, contact_id: str) -> Conversation | None:
        """The contact's thread: the active one if any, else the most recently resolved."""
        result: Conversation | None = await self.session.scalar(
            self.select()
            .where(Conversation.contact_id == contact_id)
            .order_by((Conversation.status == "RESOLVED").asc(), Conversation.created_at.desc())
            .limit(1)
        )
        return result

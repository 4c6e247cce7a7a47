"""Message queries."""

from __future__ import annotations

from sqlalchemy import Select, or_

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Message


class MessageNotFound(NotFound):
    code = "message_not_found"


class MessageRepository(TenantRepository[Message]):
    model = Message
    not_found = MessageNotFound
    noun = "Message"

    def listing(self, *, conversation_id: str | None) -> Select[Message]:
        query = self.select()
        if conversation_id:
            query = query.where(Message.conversation_id == conversation_id)
        return query.order_by(Message.created_at.desc(), Message.id.desc())

    async def recent_in_conversation(self, conversation_id: str, *, limit: int) -> list[Message]:
        rows = await self.session.scalars(self.listing(conversation_id=conversation_id).limit(limit))
        return list(rows)

    async def find_by_any_id(self, id_or_wamid: str) -> Message | None:
        """A message by our id or by its WhatsApp id (clients may hold either)."""
        result: Message | None = await self.session.scalar(
            self.select().where(or_(Message.id == id_or_wamid, Message.whatsapp_message_id == id_or_wamid))
        )
        return result

    async def find_by_wamid(self, wamid: str) -> Message | None:
        result: Message | None = await self.session.scalar(self.select().where(Message.whatsapp_message_id == wamid))
        return result

"""Quick reply queries."""

from __future__ import annotations

from sqlalchemy import Select, or_

from kaanha.errors import Conflict, NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import QuickReply


class QuickReplyNotFound(NotFound):
    code = "quick_reply_not_found"


class DuplicateShortcut(Conflict):
    code = "duplicate_shortcut"


class QuickReplyRepository(TenantRepository[QuickReply]):
    model = QuickReply
    not_found = QuickReplyNotFound
    noun = "Quick reply"

    async def find_by_shortcut(self, shortcut: str) -> QuickReply | None:
        result: QuickReply | None = await self.session.scalar(self.select().where(QuickReply.shortcut == shortcut))
        return result

    def listing(self, *, search: str | None) -> Select[QuickReply]:
        """By shortcut; `search` matches the start of a shortcut or any part of the text, ignoring case."""
        query = self.select()
        if search:
            shortcut = search.removeprefix("/").lower()
            query = query.where(
                or_(
                    QuickReply.shortcut.startswith(shortcut, autoescape=True),
                    QuickReply.text.icontains(search, autoescape=True),
                )
            )
        return query.order_by(QuickReply.shortcut)

"""Template queries."""

from __future__ import annotations

from sqlalchemy import Select

from kaanha.errors import Conflict, NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Template


class TemplateNotFound(NotFound):
    code = "template_not_found"


class DuplicateTemplate(Conflict):
    code = "duplicate_template"


class TemplateRepository(TenantRepository[Template]):
    model = Template
    not_found = TemplateNotFound
    noun = "Template"

    async def find_by_name(self, name: str, language: str) -> Template | None:
        result: Template | None = await self.session.scalar(
            self.select().where(Template.name == name, Template.language == language)
        )
        return result

    async def languages_of(self, name: str) -> list[str]:
        rows = await self.session.scalars(self.select().where(Template.name == name))
        return sorted(row.language for row in rows)

    async def everything(self) -> list[Template]:
        return list(await self.session.scalars(self.select()))

    def listing(
        self, *, status: str | None, category: str | None, language: str | None, search: str | None
    ) -> Select[Template]:
        """Templates by name, then language; `search` is a substring of the name."""
        query = self.select()
        if status:
            query = query.where(Template.status == status)
        if category:
            query = query.where(Template.category == category)
        if language:
            query = query.where(Template.language == language)
        if search:
            # Names are lowercase with underscores: `_` is a literal here, not LIKE's wildcard.
            query = query.where(Template.name.contains(search.lower(), autoescape=True))
        return query.order_by(Template.name, Template.language)

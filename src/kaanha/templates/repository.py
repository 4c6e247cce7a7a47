"""Template queries."""

from __future__ import annotations

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Template


class TemplateNotFound(NotFound):
    code = "template_not_found"


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

"""Template rules: which template a send may use, and whether it gets the parameters it needs."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import InvalidRequest
from kaanha.kit.ids import new_id
from kaanha.models import Template
from kaanha.templates.repository import TemplateNotFound, TemplateRepository
from kaanha.templates.samples import SAMPLE_TEMPLATES

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class TemplateNotApproved(InvalidRequest):
    code = "template_not_approved"


class TemplateParametersMismatch(InvalidRequest):
    code = "template_parameters_mismatch"


def placeholders(text: str | None) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(text or "")))


async def add_sample_templates(session: AsyncSession, *, organization_id: str) -> None:
    """Give a sandbox organization WhatsApp's approved samples (hello_world and friends)."""
    repository = TemplateRepository(session, organization_id)
    for sample in SAMPLE_TEMPLATES:
        if await repository.find_by_name(sample["name"], sample["language"]) is None:
            repository.add(
                Template(
                    id=new_id("tpl"),
                    name=sample["name"],
                    language=sample["language"],
                    category=sample["category"],
                    status="APPROVED",
                    components=sample["components"],
                )
            )
    await session.flush()


async def resolve_for_send(
    session: AsyncSession, *, organization_id: str, name: str, language: str, components: list[dict[str, Any]]
) -> Template:
    """The approved template a send names, after checking each component gets its parameters."""
    repository = TemplateRepository(session, organization_id)
    template = await repository.find_by_name(name, language)
    if template is None:
        languages = await repository.languages_of(name)
        if languages:
            raise TemplateNotFound(
                f"Template '{name}' has no '{language}' version; it exists in: {', '.join(languages)}"
            )
        raise TemplateNotFound(f"Template '{name}' not found: create it or sync templates first")
    if template.status != "APPROVED":
        raise TemplateNotApproved(
            f"Template '{name}' ({language}) is {template.status}; only APPROVED templates can be sent"
        )
    check_parameters(template, components)
    return template


def check_parameters(template: Template, components: list[dict[str, Any]]) -> None:
    """Each text component with placeholders needs exactly that many parameters (Meta's 132000)."""
    given: dict[str, int] = {}
    for component in components:
        kind = str(component.get("type", "")).lower()
        given[kind] = len(component.get("parameters") or [])
    for component in template.components:
        kind = str(component.get("type", "")).lower()
        if kind not in ("header", "body"):
            continue
        needed = placeholders(component.get("text"))
        if kind == "header" and component.get("format", "TEXT") != "TEXT":
            needed = ["media"]
        have = given.get(kind, 0)
        if have != len(needed):
            raise TemplateParametersMismatch(
                f"Template '{template.name}' {kind} needs {len(needed)} parameter(s), got {have}"
            )
    for kind, count in given.items():
        if (
            kind in ("header", "body")
            and count
            and not any(str(c.get("type", "")).lower() == kind for c in template.components)
        ):
            raise TemplateParametersMismatch(f"Template '{template.name}' has no {kind} to fill")


def render_preview(template: Template, components: list[dict[str, Any]]) -> str:
    """The text the customer will read, placeholders filled, for the inbox and the API."""
    values: dict[str, list[str]] = {}
    for component in components:
        kind = str(component.get("type", "")).lower()
        values[kind] = [str(p.get("text", p.get(p.get("type", ""), ""))) for p in component.get("parameters") or []]
    parts = []
    for component in template.components:
        kind = str(component.get("type", "")).lower()
        text = component.get("text")
        if not text or kind not in ("header", "body", "footer"):
            continue
        filled = values.get(kind, [])
        names = placeholders(text)

        def fill(match: re.Match[str], names: list[str] = names, filled: list[str] = filled) -> str:
            index = names.index(match.group(1))
            return filled[index] if index < len(filled) else match.group(0)

        parts.append(_PLACEHOLDER.sub(fill, text))
    return "\n".join(parts)

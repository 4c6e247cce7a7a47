"""Public shape of message templates."""

from __future__ import annotations

from typing import Any

from kaanha.kit.schemas import Schema
from kaanha.models import Template


class TemplateOut(Schema):
    id: str
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]]
    rejected_reason: str | None
    # Meta's verdict on how customers receive it: GREEN, YELLOW, RED or UNKNOWN; null until Meta rates it.
    quality_score: str | None


def template_out(template: Template) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        language=template.language,
        category=template.category,
        status=template.status,
        components=list(template.components or []),
        rejected_reason=template.rejected_reason,
        quality_score=template.quality_score,
    )

"""Public shape of message templates."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp
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
    parameter_format: str
    created_at: Timestamp
    updated_at: Timestamp


class TemplateCreate(RequestSchema):
    """`POST /templates`: Meta's own fields; the rules (kaanha.templates.rules) check their content."""

    name: str = Field(max_length=512, description="Lowercase letters, digits and underscores")
    language: str = Field(max_length=15, description="A language code such as en or en_US")
    category: str = Field(max_length=20, description="MARKETING, UTILITY or AUTHENTICATION")
    parameter_format: str | None = Field(
        default=None, max_length=10, description="POSITIONAL ({{1}}, the default) or NAMED ({{first_name}})"
    )
    components: list[dict[str, Any]] = Field(description="Meta's components: HEADER, BODY (required), FOOTER, BUTTONS")


class SyncSummary(Schema):
    """What a sync with Meta changed; `total` is how many templates there are now."""

    created: int
    updated: int
    deleted: int
    total: int


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
        parameter_format=template.parameter_format or "POSITIONAL",
        created_at=template.created_at,
        updated_at=template.updated_at,
    )

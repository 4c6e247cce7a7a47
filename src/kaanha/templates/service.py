"""Template rules: listing, creating, deleting and syncing templates, and which template a send may use."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import InvalidRequest
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.media.repository import MediaRepository
from kaanha.media.rules import check_sendable
from kaanha.models import Template
from kaanha.organizations.repository import get_connection
from kaanha.runtime import Runtime
from kaanha.templates import meta
from kaanha.templates.components import MEDIA_FORMATS, header_format
from kaanha.templates.repository import DuplicateTemplate, TemplateNotFound, TemplateRepository
from kaanha.templates.review import schedule_review
from kaanha.templates.rules import CATEGORIES, NewTemplate, check_new_template
from kaanha.templates.samples import SAMPLE_TEMPLATES
from kaanha.templates.schemas import SyncSummary, TemplateCreate, TemplateOut, template_out
from kaanha.templates.sending import TemplateParametersMismatch, check_parameters, render_preview
from kaanha.templates.sync import apply_remote
from kaanha.whatsapp.cloud_api.bodies import OUR_MEDIA_PREFIX

__all__ = [
    "TemplateNotApproved",
    "TemplateParametersMismatch",
    "add_sample_templates",
    "check_parameters",
    "create_template",
    "delete_template",
    "get_template",
    "list_templates",
    "render_preview",
    "resolve_for_send",
    "sync_templates",
]

# Meta's template statuses (message_template_status_update events), for the list's filter.
STATUSES = (
    "APPROVED",
    "PENDING",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "FLAGGED",
    "IN_APPEAL",
    "REINSTATED",
    "ARCHIVED",
    "UNARCHIVED",
    "DELETED",
    "PENDING_DELETION",
    "LOCKED",
    "LIMIT_EXCEEDED",
)


class TemplateNotApproved(InvalidRequest):
    code = "template_not_approved"


class InvalidTemplateFilter(InvalidRequest):
    code = "invalid_filter"


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


async def list_templates(
    session: AsyncSession,
    *,
    organization_id: str,
    status: str | None,
    category: str | None,
    language: str | None,
    search: str | None,
    page: PageRequest,
) -> Page[TemplateOut]:
    """One page of the organization's templates, by name, filtered by status, category, language and name."""
    repository = TemplateRepository(session, organization_id)
    query = repository.listing(
        status=_filter(status, STATUSES, "status"),
        category=_filter(category, CATEGORIES, "category"),
        language=language,
        search=search,
    )
    templates, total = await repository.page(query, page)
    return Page.of([template_out(template) for template in templates], request=page, total=total)


def _filter(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None:
        return None
    if value.upper() not in allowed:
        raise InvalidTemplateFilter(f"{name} must be one of {', '.join(allowed)}, not '{value}'")
    return value.upper()


async def get_template(session: AsyncSession, *, organization_id: str, template_id: str) -> TemplateOut:
    return template_out(await TemplateRepository(session, organization_id).get(template_id))


async def create_template(
    session: AsyncSession, *, runtime: Runtime, organization_id: str, data: TemplateCreate
) -> TemplateOut:
    """Check a new template against Meta's rules, then have it reviewed.

    On the Cloud API it is submitted to Meta first, and stored only once Meta took it (with Meta's id
    and status); Meta's refusal or silence stores nothing. On the sandbox it is stored PENDING and the
    sandbox's review decides a few seconds later. Either way the verdict arrives as `template.updated`.
    """
    new = check_new_template(
        name=data.name,
        language=data.language,
        category=data.category,
        parameter_format=data.parameter_format,
        components=data.components,
    )
    repository = TemplateRepository(session, organization_id)
    if await repository.find_by_name(new.name, new.language) is not None:
        raise _duplicate(new)
    connection = await get_connection(session, organization_id)
    template = _row(new)
    if connection.type == "cloud_api":
        answer = await meta.submit(runtime, connection, new)
        template.external_id = str(answer["id"])[:64]
        template.status = str(answer.get("status") or "PENDING").upper()[:20]
        # Meta may file it under another category than asked (a "utility" message that reads as marketing).
        template.category = str(answer.get("category") or new.category).upper()[:20]
    if not await repository.add_unless_taken(template):
        raise _duplicate(new)
    if connection.type != "cloud_api":
        schedule_review(session, runtime, template)
    return template_out(template)


def _row(new: NewTemplate) -> Template:
    moment = now()
    return Template(
        id=new_id("tpl"),
        name=new.name,
        language=new.language,
        category=new.category,
        status="PENDING",
        components=new.components,
        parameter_format=new.parameter_format,
        created_at=moment,
        updated_at=moment,
    )


def _duplicate(new: NewTemplate) -> DuplicateTemplate:
    return DuplicateTemplate(
        f"Template '{new.name}' already exists in {new.language}: choose another name, or delete the existing one"
    )


async def delete_template(session: AsyncSession, *, runtime: Runtime, organization_id: str, template_id: str) -> None:
    """Delete a template here and, on the Cloud API, at Meta first (only this language of it)."""
    repository = TemplateRepository(session, organization_id)
    template = await repository.get(template_id)
    connection = await get_connection(session, organization_id)
    # Without Meta's id, a delete by name would take every language of it at Meta: only ours goes.
    if connection.type == "cloud_api" and template.external_id:
        await meta.remove(runtime, connection, template)
    await session.delete(template)
    await session.flush()


async def sync_templates(session: AsyncSession, *, runtime: Runtime, organization_id: str) -> SyncSummary:
    """Bring the templates in line with Meta's list (Cloud API); the sandbox has nothing to bring in."""
    connection = await get_connection(session, organization_id)
    if connection.type != "cloud_api":
        total = len(await TemplateRepository(session, organization_id).everything())
        return SyncSummary(created=0, updated=0, deleted=0, total=total)
    fetched_at = now()
    remote = await meta.fetch_all(runtime, connection)
    return await apply_remote(session, organization_id=organization_id, remote=remote, fetched_at=fetched_at)


async def resolve_for_send(
    session: AsyncSession, *, organization_id: str, name: str, language: str, components: list[dict[str, Any]]
) -> Template:
    """The APPROVED template a send names, after checking each component gets exactly its parameters."""
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
    await _check_header_media(session, organization_id, template, components)
    return template


async def _check_header_media(
    session: AsyncSession, organization_id: str, template: Template, components: list[dict[str, Any]]
) -> None:
    """A media header given by our media id must be ours, and of a type and size WhatsApp sends."""
    kind = header_format(template.components)
    if kind not in MEDIA_FORMATS:
        return
    for component in components:
        if str(component.get("type", "")).lower() != "header":
            continue
        media_id = ((component.get("parameters") or [{}])[0].get(str(kind).lower()) or {}).get("id")
        if isinstance(media_id, str) and media_id.startswith(OUR_MEDIA_PREFIX):
            media = await MediaRepository(session, organization_id).get(media_id)
            check_sendable(str(kind).lower(), mime_type=media.mime_type, size=media.size)

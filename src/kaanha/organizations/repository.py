"""Organization and connection queries (organizations are the tenants, so these are not tenant-scoped)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import NotFound
from kaanha.models import Organization, WhatsAppConnection


class OrganizationNotFound(NotFound):
    code = "organization_not_found"


async def get_organization(session: AsyncSession, organization_id: str) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise OrganizationNotFound(f"Organization {organization_id} not found")
    return organization


async def find_organization(session: AsyncSession, id_or_name: str) -> Organization | None:
    """An organization by id, or else by exact name (the CLI's ORG argument)."""
    by_id = await session.get(Organization, id_or_name)
    if by_id is not None:
        return by_id
    matches = list(await session.scalars(select(Organization).where(Organization.name == id_or_name).limit(2)))
    if len(matches) > 1:
        raise OrganizationNotFound(f"More than one organization is named '{id_or_name}': use its id")
    return matches[0] if matches else None


async def get_connection(session: AsyncSession, organization_id: str) -> WhatsAppConnection:
    connection = await session.get(WhatsAppConnection, organization_id)
    if connection is None:
        raise OrganizationNotFound(f"Organization {organization_id} has no WhatsApp connection")
    return connection

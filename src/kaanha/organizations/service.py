"""Creating organizations and reading their connection status."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import InvalidRequest
from kaanha.kit.ids import new_id
from kaanha.models import Organization, WhatsAppConnection
from kaanha.organizations.plans import PLANS
from kaanha.templates.service import add_sample_templates


def sandbox_phone_number() -> str:
    # NXX-555-01XX numbers are reserved for fiction in North America: never a real person's phone.
    return f"+120155501{secrets.randbelow(100):02d}"


async def create_organization(
    session: AsyncSession, *, name: str, plan: str = "starter", default_region: str = "IN"
) -> Organization:
    """A new tenant on the sandbox connection, with the sample templates approved."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("An organization needs a name of 1 to 200 characters")
    if plan not in PLANS:
        raise InvalidRequest(f"Unknown plan '{plan}': choose one of {', '.join(PLANS)}")
    organization = Organization(id=new_id("org"), name=name, plan=plan, default_region=default_region.upper())
    session.add(organization)
    await session.flush()
    session.add(
        WhatsAppConnection(
            organization_id=organization.id,
            type="sandbox",
            phone_number=sandbox_phone_number(),
            # Sandbox webhooks route by this id exactly as Meta's do by the number's id.
            phone_number_id=f"sandbox-{organization.id}",
            business_name=name,
            connected=True,
        )
    )
    await add_sample_templates(session, organization_id=organization.id)
    await session.flush()
    return organization

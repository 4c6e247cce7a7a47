"""From an event to one pending delivery per enabled endpoint that wants it, in the same transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.events.types import subscribed
from kaanha.kit.ids import new_id
from kaanha.models import Event, WebhookDelivery, WebhookEndpoint

_CACHE_KEY = "webhook_endpoints"


async def fan_out(session: AsyncSession, event: Event) -> None:
    for endpoint_id, wanted in await _enabled_endpoints(session, event.organization_id):
        if subscribed(wanted, event.type):
            session.add(
                WebhookDelivery(
                    id=new_id("whd"),
                    organization_id=event.organization_id,
                    endpoint_id=endpoint_id,
                    event_id=event.id,
                    event_type=event.type,
                    status="pending",
                    attempts=0,
                    next_attempt_at=event.created_at,
                    created_at=event.created_at,
                )
            )


async def _enabled_endpoints(session: AsyncSession, organization_id: str) -> list[tuple[str, list[str]]]:
    # One query per organization and transaction: a batch of inbound messages emits many events.
    cache: dict[str, list[tuple[str, list[str]]]] = session.info.setdefault(_CACHE_KEY, {})
    if organization_id not in cache:
        rows = await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(
                WebhookEndpoint.organization_id == organization_id, WebhookEndpoint.enabled.is_(True)
            )
        )
        cache[organization_id] = [(row.id, list(row.events)) for row in rows]
    return cache[organization_id]


def forget_endpoints(session: AsyncSession, organization_id: str) -> None:
    """Call after creating, changing or deleting an endpoint inside a transaction that may emit later."""
    session.info.get(_CACHE_KEY, {}).pop(organization_id, None)

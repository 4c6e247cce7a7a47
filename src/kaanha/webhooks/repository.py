"""Queries on webhook endpoints, their deliveries and the log of attempts, all bound to one organization."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, and_, func, select

from kaanha.errors import NotFound
from kaanha.kit.pagination import PageRequest
from kaanha.kit.repository import TenantRepository
from kaanha.models import Organization, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class WebhookEndpointRepository(TenantRepository[WebhookEndpoint]):
    model = WebhookEndpoint
    not_found = WebhookEndpointNotFound
    noun = "Webhook endpoint"

    def listing(self) -> Select[WebhookEndpoint]:
        return self.select().order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())

    async def count(self) -> int:
        total = await self.session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.organization_id == self.organization_id)
        )
        return int(total or 0)

    async def lock_organization(self) -> None:
        """Serialize endpoint creation per organization on PostgreSQL, so a limit checked holds.

        FOR NO KEY UPDATE: inserts elsewhere that reference the organization (messages, events) take
        FOR KEY SHARE on its row and are not held up. SQLite serializes writers anyway: the count
        after an insert runs under its write lock.
        """
        await self.session.execute(
            select(Organization.id).where(Organization.id == self.organization_id).with_for_update(key_share=True)
        )


class WebhookDeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery
    not_found = WebhookDeliveryNotFound
    noun = "Webhook delivery"

    async def find_for_endpoint(self, endpoint_id: str, delivery_or_attempt_id: str) -> WebhookDelivery | None:
        """The endpoint's delivery with this id, or the one an attempt with this id belongs to."""
        delivery = await self.find(delivery_or_attempt_id)
        if delivery is not None:
            return delivery if delivery.endpoint_id == endpoint_id else None
        if "\x00" in delivery_or_attempt_id:
            return None
        delivery_id = await self.session.scalar(
            select(WebhookAttempt.delivery_id).where(
                WebhookAttempt.organization_id == self.organization_id,
                WebhookAttempt.endpoint_id == endpoint_id,
                WebhookAttempt.id == delivery_or_attempt_id,
            )
        )
        if delivery_id is None:
            return None
        delivery = await self.find(delivery_id)
        return delivery if delivery is not None and delivery.endpoint_id == endpoint_id else None

    async def state(self, delivery_id: str) -> tuple[str, datetime | None] | None:
        """The delivery's status and next attempt, read afresh (another session may just have changed them)."""
        row = (
            await self.session.execute(
                select(WebhookDelivery.status, WebhookDelivery.next_attempt_at).where(
                    WebhookDelivery.organization_id == self.organization_id, WebhookDelivery.id == delivery_id
                )
            )
        ).one_or_none()
        return None if row is None else (row.status, row.next_attempt_at)


class WebhookAttemptRepository(TenantRepository[WebhookAttempt]):
    model = WebhookAttempt
    noun = "Webhook attempt"

    async def page_for_endpoint(
        self, endpoint_id: str, *, succeeded: bool | None, event_type: str | None, request: PageRequest
    ) -> tuple[list[tuple[WebhookAttempt, str, datetime | None]], int]:
        """One page of the endpoint's attempts, newest first, each with its delivery's status and next attempt."""
        conditions = [WebhookAttempt.organization_id == self.organization_id, WebhookAttempt.endpoint_id == endpoint_id]
        if succeeded is not None:
            conditions.append(WebhookAttempt.succeeded.is_(succeeded))
        if event_type is not None:
            conditions.append(WebhookAttempt.event_type == event_type)
        total = await self.session.scalar(select(func.count()).select_from(WebhookAttempt).where(*conditions))
        rows = await self.session.execute(
            select(WebhookAttempt, WebhookDelivery.status, WebhookDelivery.next_attempt_at)
            .join(
                WebhookDelivery,
                and_(
                    WebhookDelivery.id == WebhookAttempt.delivery_id,
                    WebhookDelivery.organization_id == self.organization_id,
                ),
            )
            .where(*conditions)
            # Attempts of one delivery may share a frozen or coarse timestamp; the number orders them.
            .order_by(WebhookAttempt.created_at.desc(), WebhookAttempt.attempt.desc(), WebhookAttempt.id.desc())
            .limit(request.limit)
            .offset(request.offset)
        )
        return [(row[0], row[1], row[2]) for row in rows], int(total or 0)

"""Queries on payment settings, gateway accounts, payment links and applied gateway events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import NotFound
from kaanha.kit.clock import now
from kaanha.kit.repository import TenantRepository
from kaanha.models import PaymentGatewayAccount, PaymentGatewayEvent, PaymentLink, PaymentSettings

# Links the expiry sweep flips in one statement; the rest wait for its next run a minute later.
EXPIRY_BATCH = 500


class PaymentLinkNotFound(NotFound):
    code = "payment_link_not_found"


class PaymentSettingsRepository(TenantRepository[PaymentSettings]):
    model = PaymentSettings
    noun = "Payment settings"

    async def current(self) -> PaymentSettings | None:
        result: PaymentSettings | None = await self.session.scalar(self.select())
        return result


class PaymentGatewayAccountRepository(TenantRepository[PaymentGatewayAccount]):
    model = PaymentGatewayAccount
    noun = "Payment gateway account"

    async def for_gateway(self, gateway: str) -> PaymentGatewayAccount | None:
        result: PaymentGatewayAccount | None = await self.session.scalar(
            self.select().where(PaymentGatewayAccount.gateway == gateway)
        )
        return result

    async def every(self) -> list[PaymentGatewayAccount]:
        return list(await self.session.scalars(self.select().order_by(PaymentGatewayAccount.gateway)))


class PaymentLinkRepository(TenantRepository[PaymentLink]):
    model = PaymentLink
    not_found = PaymentLinkNotFound
    noun = "Payment link"

    def listing(self, *, status: str | None, contact_id: str | None) -> Select[PaymentLink]:
        """Newest first; served by (organization_id, status, created_at) or (organization_id, contact_id)."""
        query = self.select()
        if status:
            query = query.where(PaymentLink.status == status)
        if contact_id:
            query = query.where(PaymentLink.contact_id == contact_id)
        return query.order_by(PaymentLink.created_at.desc(), PaymentLink.id.desc())

    async def find_by_gateway_id(self, gateway: str, gateway_link_id: str) -> PaymentLink | None:
        result: PaymentLink | None = await self.session.scalar(
            self.select().where(PaymentLink.gateway == gateway, PaymentLink.gateway_link_id == gateway_link_id)
        )
        return result

    async def transition(
        self, link_id: str, *, from_statuses: tuple[str, ...], values: dict[str, Any]
    ) -> PaymentLink | None:
        """Move a link on with one conditional UPDATE; None when it was no longer in `from_statuses`.

        Duplicated webhooks, a sweep on two workers, or a cancel racing a payment can't apply twice:
        only the statement that still finds the old status changes the row (and emits the event).
        """
        changed = await self.session.scalar(
            update(PaymentLink)
            .where(
                PaymentLink.organization_id == self.organization_id,
                PaymentLink.id == link_id,
                PaymentLink.status.in_(from_statuses),
            )
            .values(**values, updated_at=now())
            .returning(PaymentLink.id),
            execution_options={"synchronize_session": False},
        )
        if changed is None:
            return None
        return await self.session.get(PaymentLink, link_id, populate_existing=True)


class GatewayEventRepository(TenantRepository[PaymentGatewayEvent]):
    model = PaymentGatewayEvent
    noun = "Gateway event"


async def find_for_public_page(session: AsyncSession, link_id: str) -> PaymentLink | None:
    """A link by id alone, for the unauthenticated /pay/{id} page.

    The one deliberate read outside a tenant repository: the id is the link's secret (80 random bits),
    and whoever holds it is the customer it was sent to.
    """
    if "\x00" in link_id or len(link_id) > 40:
        return None
    result: PaymentLink | None = await session.scalar(select(PaymentLink).where(PaymentLink.id == link_id))
    return result


async def expire_due(session: AsyncSession, *, at: datetime) -> list[PaymentLink]:
    """Flip created links whose expiry has passed to expired, in one conditional UPDATE across organizations.

    Two workers sweeping at once can't both expire a link: the UPDATE re-checks `status = 'created'`.
    """
    due = (
        select(PaymentLink.id)
        .where(PaymentLink.status == "created", PaymentLink.expires_at <= at)
        .order_by(PaymentLink.expires_at)
        .limit(EXPIRY_BATCH)
    )
    ids = list(
        await session.scalars(
            update(PaymentLink)
            .where(PaymentLink.id.in_(due), PaymentLink.status == "created")
            .values(status="expired", expired_at=at, updated_at=now())
            .returning(PaymentLink.id),
            execution_options={"synchronize_session": False},
        )
    )
    if not ids:
        return []
    rows = await session.scalars(
        select(PaymentLink).where(PaymentLink.id.in_(ids)).execution_options(populate_existing=True)
    )
    return list(rows)

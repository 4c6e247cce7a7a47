"""Background work of payment links: expiry happens by itself, checked every minute."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.payment_links.service import expire_overdue_links
from kaanha.runtime import Runtime
from kaanha.worker.runner import periodic

logger = logging.getLogger("kaanha.payment_links")


@periodic("payment_links.expire_due", every=timedelta(minutes=1))
async def expire_payment_links(session: AsyncSession, _runtime: Runtime) -> None:
    # Every worker runs this; the conditional UPDATE lets only one of them expire (and announce) a link.
    expired = await expire_overdue_links(session)
    if expired:
        logger.info("%d payment links expired", expired)

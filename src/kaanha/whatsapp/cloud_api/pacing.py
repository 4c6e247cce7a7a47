"""Pacing sends per phone number at its throughput (80 messages/s by default, up to 1,000).

The counter lives in the rate limiter's storage: in memory for one process, in Redis when several
workers share a number, so together they stay under Meta's limit instead of earning 130429s.
"""

from __future__ import annotations

import asyncio

from limits import RateLimitItemPerSecond

from kaanha.rate_limit.limiter import RateLimiter
from kaanha.whatsapp.provider import Paced

MAX_WAIT_SECONDS = 5.0


class Pacer:
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._items: dict[int, RateLimitItemPerSecond] = {}

    async def acquire(self, phone_number_id: str, per_second: int) -> None:
        """Wait for a send slot of this number; after a few seconds, give the job back to the queue."""
        item = self._items.setdefault(per_second, RateLimitItemPerSecond(per_second))
        pause = max(0.002, 1.0 / per_second)
        waited = 0.0
        while not await self._limiter.try_acquire(item, "pace", phone_number_id):
            if waited >= MAX_WAIT_SECONDS:
                raise Paced(f"no send slot for {phone_number_id} within {MAX_WAIT_SECONDS:g} s")
            await asyncio.sleep(pause)
            waited += pause

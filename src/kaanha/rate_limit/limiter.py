"""A thin layer over `limits`: memory storage in one process, Redis when several share the limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from limits import RateLimitItem, parse, storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from kaanha.errors import RateLimited
from kaanha.kit.clock import wall_time


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window frees a slot

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_after)
        return headers


class RateLimiter:
    """Sliding-window counters: a burst at a window's edge can't double the allowance (as with fixed
    windows), at the cost of two counters per key rather than a timestamp per hit (moving windows)."""

    def __init__(self, redis_url: str | None = None) -> None:
        uri = f"async+{redis_url}" if redis_url else "async+memory://"
        self._storage = storage.storage_from_string(uri)
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)

    @staticmethod
    def parse(limit: str) -> RateLimitItem:
        return parse(limit)

    async def hit(self, limit: RateLimitItem, *identifiers: str) -> Verdict:
        allowed = await self._strategy.hit(limit, *identifiers)
        stats = await self._strategy.get_window_stats(limit, *identifiers)
        # `limits` keeps its own wall-clock time, so the reset is measured against it too.
        reset_after = max(1, math.ceil(stats.reset_time - wall_time()))
        return Verdict(allowed=allowed, limit=limit.amount, remaining=stats.remaining, reset_after=reset_after)

    async def try_acquire(self, limit: RateLimitItem, *identifiers: str) -> bool:
        """Count one hit if the limit allows it; no statistics (the hot path of pacing)."""
        return await self._strategy.hit(limit, *identifiers)

    async def check(self, limit: RateLimitItem, *identifiers: str, message: str) -> Verdict:
        """Count one hit; raise 429 with Retry-After when the limit is spent."""
        verdict = await self.hit(limit, *identifiers)
        if not verdict.allowed:
            raise RateLimited(f"{message}; retry in {verdict.reset_after} s", headers=verdict.headers())
        return verdict

    async def reset(self) -> None:
        await self._storage.reset()  # type: ignore[misc]

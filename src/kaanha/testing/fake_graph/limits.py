"""Meta's two send limits, in O(1) per request so a 20,000-send benchmark never scans history.

- Pair rate (131056): per (business number, customer), a token bucket of `burst` tokens with one token back
  every `interval` seconds. It models "1 message every 6 s, bursts of 45 borrowed from future quota".
- Throughput (130429): per business number, at most `per_second` accepted sends in any sliding second. The
  window keeps only the last second's timestamps, dropped from the left as they age.
"""

from __future__ import annotations

from collections import deque


class PairLimiter:
    """Token buckets keyed by (phone_number_id, recipient)."""

    __slots__ = ("_buckets", "burst", "interval")

    def __init__(self, burst: int, interval: float) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("pair_burst must be >= 1 and pair_interval_seconds > 0")
        self.burst = burst
        self.interval = interval
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _available(self, key: tuple[str, str], now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) / self.interval)

    def allows(self, key: tuple[str, str], now: float) -> bool:
        """Whether one more message fits, without taking it (a refusal elsewhere must not spend a token)."""
        return self._available(key, now) >= 1.0

    def take(self, key: tuple[str, str], now: float) -> None:
        self._buckets[key] = (self._available(key, now) - 1.0, now)


class ThroughputLimiter:
    """Sliding one-second windows keyed by phone_number_id."""

    __slots__ = ("_windows", "per_second")

    def __init__(self, per_second: int) -> None:
        if per_second < 1:
            raise ValueError("throughput_per_second must be >= 1")
        self.per_second = per_second
        self._windows: dict[str, deque[float]] = {}

    def allows(self, key: str, now: float) -> bool:
        window = self._windows.get(key)
        if window is None:
            return True
        horizon = now - 1.0
        while window and window[0] <= horizon:
            window.popleft()
        return len(window) < self.per_second

    def take(self, key: str, now: float) -> None:
        self._windows.setdefault(key, deque()).append(now)

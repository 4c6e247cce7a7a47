"""The one clock: everything that reads the time asks `now()`, so tests can freeze and step it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time in UTC, or a frozen instant when a test sets one."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC)

    def freeze(self, at: datetime) -> None:
        self._frozen = at if at.tzinfo else at.replace(tzinfo=UTC)

    def advance(self, delta: timedelta) -> None:
        if self._frozen is None:
            raise RuntimeError("advance() needs a frozen clock")
        self._frozen += delta

    def unfreeze(self) -> None:
        self._frozen = None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


clock = Clock()


def now() -> datetime:
    return clock.now()


def wall_time() -> float:
    """Unfreezable Unix time, for libraries that keep their own clock (the `limits` windows)."""
    import time

    return time.time()

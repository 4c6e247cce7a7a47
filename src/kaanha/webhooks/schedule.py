"""When a failed webhook delivery is tried again: the schedule as data, shared by the dispatcher, docs and tests."""

from __future__ import annotations

import random
from datetime import timedelta

# The waits between attempts: the first attempt goes at once, the next after 10 s, and so on. About
# three days in all (75.6 h without jitter), so a receiver that is down over a weekend still gets
# everything; the early steps are short because most failures are a deploy or a blip.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
)
# Each wait is stretched or shrunk by up to this share, so that the retries of a burst of events that
# failed together (an endpoint that went down) don't all arrive at the same instant when it comes back.
JITTER = 0.2
# The immediate attempt plus one per wait; a delivery whose last attempt fails is failed for good.
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
TOTAL_RETRY_TIME: timedelta = sum(RETRY_DELAYS, timedelta())


def retry_delay(attempts_made: int, *, rng: random.Random | None = None) -> timedelta | None:
    """How long to wait after the `attempts_made`-th scheduled attempt failed; None when it was the last."""
    if attempts_made < 1:
        raise ValueError("attempts_made counts the attempts already made, starting at 1")
    if attempts_made > len(RETRY_DELAYS):
        return None
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return RETRY_DELAYS[attempts_made - 1] * spread

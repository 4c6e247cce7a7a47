"""The retry schedule: about three days, growing waits, jitter within bounds, then failed."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from kaanha.webhooks.schedule import JITTER, MAX_ATTEMPTS, RETRY_DELAYS, TOTAL_RETRY_TIME, retry_delay


def test_the_schedule_is_the_documented_one():
    assert [delay.total_seconds() for delay in RETRY_DELAYS] == [
        10, 60, 300, 1800, 3600, 7200, 14400, 28800, 43200, 43200, 43200, 43200, 43200,
    ]  # fmt: skip
    assert MAX_ATTEMPTS == 14
    assert timedelta(days=3) <= TOTAL_RETRY_TIME <= timedelta(days=3, hours=6)
    assert JITTER == 0.2


@pytest.mark.parametrize("attempts_made", range(1, MAX_ATTEMPTS))
def test_each_wait_is_its_step_within_the_jitter(attempts_made):
    expected = RETRY_DELAYS[attempts_made - 1]
    rng = random.Random(attempts_made)
    for _ in range(50):
        delay = retry_delay(attempts_made, rng=rng)
        assert delay is not None
        assert expected * (1 - JITTER) <= delay <= expected * (1 + JITTER)


def test_jitter_spreads_retries_out():
    rng = random.Random(7)
    assert len({retry_delay(3, rng=rng) for _ in range(20)}) > 1


def test_after_the_last_attempt_there_is_no_next():
    assert retry_delay(MAX_ATTEMPTS) is None
    with pytest.raises(ValueError, match="attempts_made"):
        retry_delay(0)

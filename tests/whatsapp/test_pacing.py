"""Sends are paced per phone number: past its rate, a worker waits for a slot, then gives the job back."""

from __future__ import annotations

from kaanha.rate_limit.limiter import RateLimiter
from kaanha.whatsapp.cloud_api import pacing
from kaanha.whatsapp.cloud_api.pacing import Pacer
from kaanha.whatsapp.provider import ProviderError


async def test_a_number_gets_its_rate_and_then_the_job_goes_back_to_the_queue(monkeypatch):
    monkeypatch.setattr(pacing, "MAX_WAIT_SECONDS", 0.0)
    pacer = Pacer(RateLimiter())
    allowed, refusals = 0, []
    for _ in range(20):
        try:
            await pacer.acquire("106540352242922", 5)
            allowed += 1
        except ProviderError as error:
            refusals.append(error)
    # A sliding window: 5 a second, one more if the burst straddles a second's edge.
    assert 5 <= allowed <= 6
    assert all(error.retryable and error.code == 130429 for error in refusals)
    # Another number has its own allowance.
    await pacer.acquire("106540352240001", 5)

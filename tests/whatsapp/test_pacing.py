"""Sends are paced per phone number: past its rate, a worker waits for a slot, then gives the job back."""

from __future__ import annotations

import pytest

from kaanha.rate_limit.limiter import RateLimiter
from kaanha.whatsapp.cloud_api import pacing
from kaanha.whatsapp.cloud_api.pacing import Pacer
from kaanha.whatsapp.provider import ProviderError


async def test_a_number_gets_its_rate_and_then_the_job_goes_back_to_the_queue(monkeypatch):
    monkeypatch.setattr(pacing, "MAX_WAIT_SECONDS", 0.0)
    pacer = Pacer(RateLimiter())
    for _ in range(5):
        await pacer.acquire("106540352242922", 5)
    with pytest.raises(ProviderError) as refused:
        await pacer.acquire("106540352242922", 5)
    assert refused.value.retryable
    assert refused.value.code == 130429
    # Another number has its own allowance.
    await pacer.acquire("106540352240001", 5)

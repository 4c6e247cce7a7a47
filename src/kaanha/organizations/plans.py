"""What each plan allows."""

from __future__ import annotations

PLANS = ("starter", "pro")
# Contacts per broadcast (the reference's rate limits table); None is unlimited.
BROADCAST_LIMITS: dict[str, int | None] = {"starter": 1000, "pro": None}


def broadcast_limit(plan: str) -> int | None:
    return BROADCAST_LIMITS.get(plan, BROADCAST_LIMITS["starter"])


def plan_name(plan: str) -> str:
    return plan.capitalize()

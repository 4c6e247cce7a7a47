"""In-process wake-ups when events commit, so streams and the webhook dispatcher react at once.

Other processes (a `kaanha worker`, another `kaanha serve`) are noticed by polling the tables, so
this is only a shortcut, never the source of truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

# Each waiter is an asyncio.Event of one loop; set() from a commit on the same loop wakes it.
_stream_waiters: set[tuple[str, asyncio.Event]] = set()
_delivery_wake: asyncio.Event | None = None


def delivery_wake() -> asyncio.Event:
    global _delivery_wake
    if _delivery_wake is None:
        _delivery_wake = asyncio.Event()
    return _delivery_wake


def subscribe(organization_id: str) -> asyncio.Event:
    waiter = asyncio.Event()
    _stream_waiters.add((organization_id, waiter))
    return waiter


def unsubscribe(organization_id: str, waiter: asyncio.Event) -> None:
    _stream_waiters.discard((organization_id, waiter))


def notify_committed(organizations: Iterable[str]) -> None:
    wanted = set(organizations)
    for organization_id, waiter in list(_stream_waiters):
        if organization_id in wanted:
            waiter.set()
    delivery_wake().set()

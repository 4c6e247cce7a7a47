"""Opaque, sortable, URL-safe ids: a type prefix and a time-ordered random part."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def new_id(prefix: str) -> str:
    """`con_0lq3x8k2m9...`: millisecond time first, so ids sort roughly by creation."""
    millis = time.time_ns() // 1_000_000
    randomness = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_base36(millis, 9)}{_base36(randomness, 16)}"

"""A few seconds' memory of verified API keys, so a busy client doesn't cost a key lookup per request.

The trade: a key revoked through another process keeps working there for up to `ttl` seconds (a
revocation in this process takes effect at once). Expiry is still checked on every request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from kaanha.auth.principal import Principal


@dataclass
class VerifiedKey:
    principal: Principal
    expires_at: datetime | None
    last_used_at: datetime | None


class VerifiedKeyCache:
    def __init__(self, *, ttl_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, VerifiedKey]] = OrderedDict()

    def get(self, token_hash: str) -> VerifiedKey | None:
        found = self._entries.get(token_hash)
        if found is None:
            return None
        stored_at, entry = found
        if time.monotonic() - stored_at > self.ttl_seconds:
            del self._entries[token_hash]
            return None
        return entry

    def put(self, token_hash: str, entry: VerifiedKey) -> None:
        self._entries[token_hash] = (time.monotonic(), entry)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key_id: str) -> None:
        for token_hash, (_, entry) in list(self._entries.items()):
            if entry.principal.api_key_id == key_id:
                del self._entries[token_hash]


verified_keys = VerifiedKeyCache()

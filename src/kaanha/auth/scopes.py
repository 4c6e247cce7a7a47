"""API key scopes, as API.md lists them; a key has all of them unless created with fewer."""

from __future__ import annotations

ALL_SCOPES: tuple[str, ...] = (
    "contacts:read",
    "contacts:write",
    "conversations:read",
    "conversations:write",
    "messages:read",
    "messages:send",
    "media:read",
    "media:write",
    "templates:read",
    "templates:write",
    "broadcasts:read",
    "broadcasts:write",
    "webhooks:read",
    "webhooks:write",
    "analytics:read",
    "ai_agents:read",
    "ai_agents:write",
    "quick_replies:read",
    "quick_replies:write",
    "payment_links:read",
    "payment_links:write",
    # Not in API.md's list: managing keys is its own power, so a narrowly scoped key can't mint more.
    "api_keys:read",
    "api_keys:write",
    # Also beyond API.md: the WhatsApp connection holds Meta's credentials, so changing it is explicit.
    "connection:read",
    "connection:write",
)

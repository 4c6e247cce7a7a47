"""The long-lived parts of a running Kaanha process, built once from Settings and shared by every entry point."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from kaanha.config import Settings
from kaanha.database import Database
from kaanha.kit.crypto import SecretBox
from kaanha.kit.urls import Resolver, system_resolver
from kaanha.media.storage import MediaStore
from kaanha.rate_limit.limiter import RateLimiter
from kaanha.whatsapp.cloud_api.client import new_http_client
from kaanha.whatsapp.cloud_api.pacing import Pacer


@dataclass
class Runtime:
    settings: Settings
    database: Database
    rate_limiter: RateLimiter
    media_store: MediaStore
    secret_box: SecretBox
    # One pooled client for every outgoing call (Meta's Graph API, later webhooks and gateways).
    http: httpx.AsyncClient
    pacer: Pacer
    # How user-supplied hosts (webhook targets) are resolved before their addresses are checked;
    # tests swap in a table, so address checks are proven without any lookup or connection.
    resolver: Resolver = field(default=system_resolver)

    @classmethod
    def from_settings(cls, settings: Settings, *, database: Database | None = None) -> Runtime:
        rate_limiter = RateLimiter(settings.redis_url)
        return cls(
            settings=settings,
            database=database or Database(settings.resolved_database_url),
            rate_limiter=rate_limiter,
            media_store=MediaStore(settings.media_dir),
            secret_box=SecretBox(settings.resolved_secret_key()),
            http=new_http_client(
                timeout=settings.cloud_api.request_timeout_seconds,
                connect_timeout=settings.cloud_api.connect_timeout_seconds,
            ),
            pacer=Pacer(rate_limiter),
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.database.dispose()

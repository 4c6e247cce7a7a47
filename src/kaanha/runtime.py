"""The long-lived parts of a running Kaanha process, built once from Settings and shared by every entry point."""

from __future__ import annotations

from dataclasses import dataclass

from kaanha.config import Settings
from kaanha.database import Database
from kaanha.kit.crypto import SecretBox
from kaanha.media.storage import MediaStore
from kaanha.rate_limit.limiter import RateLimiter


@dataclass
class Runtime:
    settings: Settings
    database: Database
    rate_limiter: RateLimiter
    media_store: MediaStore
    secret_box: SecretBox

    @classmethod
    def from_settings(cls, settings: Settings, *, database: Database | None = None) -> Runtime:
        return cls(
            settings=settings,
            database=database or Database(settings.resolved_database_url),
            rate_limiter=RateLimiter(settings.redis_url),
            media_store=MediaStore(settings.media_dir),
            secret_box=SecretBox(settings.resolved_secret_key()),
        )

    async def close(self) -> None:
        await self.database.dispose()

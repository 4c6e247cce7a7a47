"""Public shapes of API keys."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field, field_validator

from kaanha.auth.scopes import ALL_SCOPES
from kaanha.kit.schemas import RequestSchema, Schema, Timestamp


class ApiKeyOut(Schema):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None
    created_at: Timestamp


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret, shown only in this response")


# Far enough for any real expiry, and far from datetime's limit when converted between time zones.
MAX_EXPIRY_YEAR = 3000


class ApiKeyCreate(RequestSchema):
    name: str = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None
    scopes: list[str] | None = Field(default=None, description="Defaults to every scope of the caller")

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str] | None) -> list[str] | None:
        if scopes is None:
            return None
        unknown = sorted(set(scopes) - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        if not scopes:
            raise ValueError("give at least one scope, or leave scopes out for all of them")
        return sorted(set(scopes))

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A time without a zone is UTC, as everywhere in the API (and in `kaanha keys create`).
        if value is None:
            return None
        if value.year >= MAX_EXPIRY_YEAR:
            raise ValueError(f"expiresAt must be before the year {MAX_EXPIRY_YEAR}; leave it out for no expiry")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

"""Public shapes of media."""

from __future__ import annotations

from kaanha.kit.schemas import Schema, Timestamp


class MediaOut(Schema):
    media_id: str
    mime_type: str
    size: int
    filename: str | None
    sha256: str
    url: str
    created_at: Timestamp

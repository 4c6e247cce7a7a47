"""Media queries."""

from __future__ import annotations

from kaanha.errors import NotFound
from kaanha.kit.repository import TenantRepository
from kaanha.models import Media


class MediaNotFound(NotFound):
    code = "media_not_found"


class MediaRepository(TenantRepository[Media]):
    model = Media
    not_found = MediaNotFound
    noun = "Media"

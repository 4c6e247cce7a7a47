"""API keys: creation (secret shown once), authentication by prefix and hash, revocation."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.auth.key_cache import VerifiedKey, verified_keys
from kaanha.auth.principal import MissingScope, Principal
from kaanha.auth.schemas import ApiKeyOut
from kaanha.auth.scopes import ALL_SCOPES
from kaanha.errors import InvalidRequest, NotFound, Unauthorized
from kaanha.kit.clock import now
from kaanha.kit.crypto import constant_time_equals, sha256_hex
from kaanha.kit.ids import new_id
from kaanha.kit.pagination import Page, PageRequest
from kaanha.kit.repository import TenantRepository
from kaanha.models import ApiKey

KEY_PREFIX = "kh"
_KEY_PATTERN = re.compile(r"^kh_([a-z0-9]{10})_([A-Za-z0-9]{40})$")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
# Writing last_used_at on every request would make every read a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


@dataclass(frozen=True)
class NewApiKey:
    record: ApiKey
    secret: str


def _generate() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(10))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return f"{KEY_PREFIX}_{prefix}", f"{KEY_PREFIX}_{prefix}_{secret}"


async def create_api_key(
    session: AsyncSession,
    *,
    organization_id: str,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    granted_by: Principal | None = None,
) -> NewApiKey:
    """Create a key; its secret is in the result and nowhere else, ever.

    A key created through another key may not hold scopes that key lacks.
    """
    chosen = sorted(set(scopes)) if scopes else sorted(granted_by.scopes if granted_by else ALL_SCOPES)
    if granted_by is not None:
        missing = sorted(set(chosen) - granted_by.scopes)
        if missing:
            raise MissingScope(f"A key can't grant scopes it lacks: {', '.join(missing)}")
    if expires_at is not None and expires_at <= now():
        raise InvalidRequest("expiresAt must be in the future")
    prefix, secret = _generate()
    record = ApiKey(
        id=new_id("key"),
        organization_id=organization_id,
        name=name,
        prefix=prefix,
        key_hash=sha256_hex(secret),
        scopes=chosen,
        expires_at=expires_at,
    )
    session.add(record)
    await session.flush()
    return NewApiKey(record=record, secret=secret)


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    """Turn an `Authorization` header into a principal, or say exactly why it can't."""
    if not authorization:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <your API key>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Malformed Authorization header: expected 'Bearer <your API key>'")
    match = _KEY_PATTERN.match(token)
    if not match:
        raise Unauthorized("Malformed API key: keys look like kh_xxxxxxxxxx_... as shown when created")
    token_hash = sha256_hex(token)
    moment = now()
    cached = verified_keys.get(token_hash)
    if cached is None:
        cached = await _verify(session, prefix=f"{KEY_PREFIX}_{match.group(1)}", token_hash=token_hash)
        verified_keys.put(token_hash, cached)
    if cached.expires_at is not None and cached.expires_at <= moment:
        raise Unauthorized("This API key has expired: create a new one")
    if cached.last_used_at is None or moment - cached.last_used_at >= LAST_USED_RESOLUTION:
        key_id = cached.principal.api_key_id
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=moment))
        cached.last_used_at = moment
    return cached.principal


async def _verify(session: AsyncSession, *, prefix: str, token_hash: str) -> VerifiedKey:
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not constant_time_equals(key.key_hash, token_hash):
        raise Unauthorized("Unknown API key: check it was copied whole, or create a new one")
    if key.revoked_at is not None:
        raise Unauthorized("This API key was revoked: create a new one")
    return VerifiedKey(
        principal=Principal(organization_id=key.organization_id, scopes=frozenset(key.scopes), api_key_id=key.id),
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


class ApiKeyRepository(TenantRepository[ApiKey]):
    model = ApiKey
    not_found = ApiKeyNotFound
    noun = "API key"


async def list_api_keys(session: AsyncSession, *, organization_id: str, page: PageRequest) -> Page[ApiKeyOut]:
    repository = ApiKeyRepository(session, organization_id)
    keys, total = await repository.page(repository.select().order_by(ApiKey.created_at.desc(), ApiKey.id), page)
    return Page.of([ApiKeyOut.model_validate(key) for key in keys], request=page, total=total)


async def revoke_api_key(session: AsyncSession, *, organization_id: str, key_id: str) -> ApiKey:
    key = await ApiKeyRepository(session, organization_id).get(key_id)
    if key.revoked_at is None:
        key.revoked_at = now()
        await session.flush()
    verified_keys.forget(key.id)
    return key

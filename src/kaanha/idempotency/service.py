"""Idempotent POSTs: the first response is stored with the key in the same transaction as the work."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import Conflict, InvalidRequest
from kaanha.http.responses import JsonResponse
from kaanha.kit.clock import now
from kaanha.kit.crypto import sha256_hex
from kaanha.kit.schemas import dump
from kaanha.models import IdempotencyRecord

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retrying with the same key and body within 24 hours returns the first response",
    ),
]


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_progress"


def _request_hash(endpoint: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return sha256_hex(f"{endpoint}\n{canonical}")


async def idempotent(
    session: AsyncSession,
    *,
    organization_id: str,
    key: str | None,
    endpoint: str,
    request_body: bytes,
    status_code: int,
    action: Callable[[], Awaitable[BaseModel]],
) -> JsonResponse:
    """Run `action` once per key; replay its stored response for retries within 24 hours.

    Errors are not stored: a request that failed changed nothing, so retrying it is safe anyway.
    """
    if key is None:
        return JsonResponse(dump(await action()), status_code=status_code)
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    fingerprint = _request_hash(endpoint, request_body)
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.organization_id == organization_id, IdempotencyRecord.key == key
        )
    )
    if record is not None and now() - record.created_at >= KEY_LIFETIME:
        await session.delete(record)
        await session.flush()
        record = None
    if record is not None:
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request; use a new key for a new request"
            )
        return JsonResponse(
            record.response_body, status_code=record.status_code, headers={"Idempotent-Replayed": "true"}
        )
    body = dump(await action())
    session.add(
        IdempotencyRecord(
            organization_id=organization_id,
            key=key,
            endpoint=endpoint,
            request_hash=fingerprint,
            status_code=status_code,
            response_body=body,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent request with the same key won; ours rolls back whole and the client's retry replays.
        raise IdempotencyKeyInFlight(
            "A request with this Idempotency-Key is being processed; retry in a moment"
        ) from None
    return JsonResponse(body, status_code=status_code)

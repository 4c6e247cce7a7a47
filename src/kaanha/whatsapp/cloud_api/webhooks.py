"""Meta's webhooks in: the subscription handshake, the signature on the raw bytes, durable intake.

The POST is answered as soon as the payload is stored with its processing job (one transaction),
so Meta's 200 never waits on our processing, and nothing acknowledged can be lost. A retry of the
same bytes (Meta retries for 7 days, and every subscribed app gets a copy) is recognised by hash.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import Forbidden, InvalidRequest, Unauthorized
from kaanha.kit.clock import now
from kaanha.kit.crypto import constant_time_equals
from kaanha.kit.ids import new_id
from kaanha.models import InboundEvent, WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.jobs import INBOUND_EVENT_JOB
from kaanha.worker.queue import enqueue

SIGNATURE_PREFIX = "sha256="
# Webhook health is written at most this often per connection, so busy numbers don't contend on it.
HEALTH_WRITE_INTERVAL = timedelta(seconds=1)


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


class VerificationFailed(Forbidden):
    code = "verification_failed"


class InvalidWebhookBody(InvalidRequest):
    code = "invalid_webhook_body"


async def verify_subscription(session: AsyncSession, *, mode: str | None, token: str | None, challenge: str) -> str:
    """Meta's handshake: echo the challenge when the verify token is one of ours."""
    if mode != "subscribe" or not token:
        raise VerificationFailed("Expected hub.mode=subscribe with a hub.verify_token")
    tokens = await session.scalars(
        select(WhatsAppConnection.verify_token).where(
            WhatsAppConnection.type == "cloud_api", WhatsAppConnection.verify_token.is_not(None)
        )
    )
    if not any(constant_time_equals(token, known or "") for known in tokens):
        raise VerificationFailed("hub.verify_token matches no connection's verify token")
    return challenge


def signature_of(body: bytes, app_secret: str) -> str:
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _addresses(payload: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The phone number ids and WhatsApp Business Account ids a payload speaks for."""
    numbers: set[str] = set()
    accounts: set[str] = set()
    entries = payload.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("id") is not None:
            accounts.add(str(entry["id"]))
        changes = entry.get("changes")
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            if isinstance(metadata, dict) and metadata.get("phone_number_id"):
                numbers.add(str(metadata["phone_number_id"]))
    return numbers, accounts


async def _signers(
    session: AsyncSession, runtime: Runtime, payload: dict[str, Any], body: bytes, signature: str
) -> list[WhatsAppConnection]:
    """The connections named in the payload whose app secret produced `signature`; empty when none did."""
    numbers, accounts = _addresses(payload)
    if not numbers and not accounts:
        return []
    candidates = await session.scalars(
        select(WhatsAppConnection).where(
            WhatsAppConnection.type == "cloud_api",
            WhatsAppConnection.app_secret_encrypted.is_not(None),
            or_(WhatsAppConnection.phone_number_id.in_(numbers), WhatsAppConnection.waba_id.in_(accounts)),
        )
    )
    signers = []
    for connection in candidates:
        secret = runtime.secret_box.decrypt(connection.app_secret_encrypted or "")
        if constant_time_equals(signature, signature_of(body, secret)):
            signers.append(connection)
    # A tenant knows its own app secret: naming its WABA must not let it speak for another's number.
    unsigned = numbers - {connection.phone_number_id for connection in signers}
    if signers and unsigned:
        foreign = select(WhatsAppConnection.organization_id).where(WhatsAppConnection.phone_number_id.in_(unsigned))
        if await session.scalar(foreign.limit(1)) is not None:
            return []
    return signers


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidWebhookBody("The webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidWebhookBody("The webhook body is not a JSON object")
    return payload


async def receive_webhook(session: AsyncSession, runtime: Runtime, *, body: bytes, signature: str | None) -> bool:
    """Check and store one POST from Meta; True when it is new (False: a retry of stored bytes).

    Forged, unsigned or unknown-number requests raise InvalidSignature and store nothing.
    """
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        raise InvalidSignature("Missing or malformed X-Hub-Signature-256 header")
    payload = _parse(body)
    signers = await _signers(session, runtime, payload, body, signature)
    if not signers:
        raise InvalidSignature("X-Hub-Signature-256 does not match the app secret of the numbers in this payload")
    await _record_health(session, [connection.organization_id for connection in signers])
    event_id = new_id("evt")
    values = {
        "id": event_id,
        "organization_id": signers[0].organization_id,
        "source": "meta",
        "payload": payload,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "received_at": now(),
    }
    insert = postgresql_insert if runtime.database.dialect == "postgresql" else sqlite_insert
    stored = await session.execute(insert(InboundEvent).values(values).on_conflict_do_nothing())
    if stored.rowcount != 1:  # type: ignore[attr-defined]
        return False
    enqueue(
        session,
        kind=INBOUND_EVENT_JOB,
        # Processing may touch only the organizations whose secret signed these bytes.
        payload={"eventId": event_id, "organizations": sorted({c.organization_id for c in signers})},
        organization_id=signers[0].organization_id,
    )
    return True


async def _record_health(session: AsyncSession, organization_ids: list[str]) -> None:
    """Webhooks are arriving: clear the 'sent but never heard back' clock (at most once a second)."""
    moment = now()
    await session.execute(
        update(WhatsAppConnection)
        .where(
            WhatsAppConnection.organization_id.in_(organization_ids),
            or_(
                WhatsAppConnection.last_webhook_at.is_(None),
                WhatsAppConnection.last_webhook_at < moment - HEALTH_WRITE_INTERVAL,
            ),
        )
        .values(last_webhook_at=moment, awaiting_webhook_since=None)
    )

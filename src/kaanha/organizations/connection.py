"""Connecting an organization to WhatsApp: the sandbox, or Meta's Cloud API with checked credentials."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import Conflict, InvalidRequest, KaanhaError
from kaanha.kit.clock import now
from kaanha.kit.phone import display_phone
from kaanha.models import WhatsAppConnection
from kaanha.organizations.repository import get_connection, get_organization
from kaanha.organizations.schemas import ConnectionOut, ConnectionStatus, ConnectionUpdate
from kaanha.organizations.service import sandbox_phone_number
from kaanha.runtime import Runtime
from kaanha.templates.sync import enqueue_sync
from kaanha.whatsapp.cloud_api.client import GraphError, GraphUnreachable
from kaanha.whatsapp.cloud_api.errors import ACCESS_TOKEN_INVALID
from kaanha.whatsapp.cloud_api.provider import graph_client

WEBHOOK_PATH = "/api/webhooks/whatsapp"


class CredentialsRejected(InvalidRequest):
    code = "credentials_rejected"


class GraphApiUnavailable(KaanhaError):
    status_code = 502
    code = "graph_api_unavailable"


class PhoneNumberTaken(Conflict):
    code = "phone_number_taken"


def _e164(display_phone_number: str | None) -> str | None:
    digits = re.sub(r"\D", "", display_phone_number or "")
    return f"+{digits}" if digits else None


def webhook_silence(connection: WhatsAppConnection, runtime: Runtime) -> str | None:
    """Why the connection looks broken although Meta accepts sends: its webhooks stopped coming."""
    silence = timedelta(seconds=runtime.settings.cloud_api.webhook_silence_seconds)
    waiting_since = connection.awaiting_webhook_since
    if connection.type != "cloud_api" or waiting_since is None or now() - waiting_since < silence:
        return None
    minutes = int((now() - waiting_since).total_seconds() // 60)
    return (
        f"No webhook from Meta for {minutes} minutes while messages are being sent: check that the app's "
        f"webhook points at {runtime.settings.public_url.rstrip('/')}{WEBHOOK_PATH} and subscribes to 'messages'"
    )


async def connection_status(session: AsyncSession, runtime: Runtime, *, organization_id: str) -> ConnectionStatus:
    connection = await get_connection(session, organization_id)
    silence = webhook_silence(connection, runtime)
    business_name = connection.business_name or (await get_organization(session, organization_id)).name
    return ConnectionStatus(
        connected=connection.connected and silence is None,
        phone_number=display_phone(connection.phone_number),
        connection_type="cloud_api" if connection.type == "cloud_api" else "sandbox",
        business_name=business_name,
        reason=connection.status_reason or silence,
    )


def connection_out(connection: WhatsAppConnection, runtime: Runtime) -> ConnectionOut:
    silence = webhook_silence(connection, runtime)
    return ConnectionOut(
        type="cloud_api" if connection.type == "cloud_api" else "sandbox",
        connected=connection.connected and silence is None,
        reason=connection.status_reason or silence,
        phone_number=display_phone(connection.phone_number),
        business_name=connection.business_name,
        phone_number_id=connection.phone_number_id,
        waba_id=connection.waba_id,
        verify_token=connection.verify_token,
        webhook_url=f"{runtime.settings.public_url.rstrip('/')}{WEBHOOK_PATH}",
        messages_per_second=connection.messages_per_second or runtime.settings.cloud_api.messages_per_second,
        has_access_token=connection.access_token_encrypted is not None,
        has_app_secret=connection.app_secret_encrypted is not None,
        last_webhook_at=connection.last_webhook_at,
        updated_at=connection.updated_at,
    )


async def get_connection_details(session: AsyncSession, runtime: Runtime, *, organization_id: str) -> ConnectionOut:
    return connection_out(await get_connection(session, organization_id), runtime)


async def update_connection(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, update: ConnectionUpdate
) -> ConnectionOut:
    """Switch to the sandbox, or connect the Cloud API after Meta confirms the number and token."""
    connection = await get_connection(session, organization_id)
    if update.type == "sandbox":
        _use_sandbox(connection, organization_id)
    else:
        await _use_cloud_api(session, runtime, connection, update)
    connection.updated_at = now()
    await session.flush()
    return connection_out(connection, runtime)


def _use_sandbox(connection: WhatsAppConnection, organization_id: str) -> None:
    if connection.type == "sandbox":
        return
    connection.type = "sandbox"
    connection.phone_number = sandbox_phone_number()
    connection.phone_number_id = f"sandbox-{organization_id}"
    connection.waba_id = None
    connection.access_token_encrypted = None
    connection.app_secret_encrypted = None
    connection.verify_token = None
    connection.messages_per_second = None
    _reset_health(connection)


def _reset_health(connection: WhatsAppConnection) -> None:
    connection.connected = True
    connection.status_reason = None
    connection.last_webhook_at = None
    connection.awaiting_webhook_since = None


async def _use_cloud_api(
    session: AsyncSession, runtime: Runtime, connection: WhatsAppConnection, update: ConnectionUpdate
) -> None:
    # ConnectionUpdate's validator guarantees the credentials of a cloud_api update.
    assert update.phone_number_id is not None
    assert update.access_token is not None
    assert update.app_secret is not None
    taken = await session.scalar(
        select(WhatsAppConnection.organization_id).where(
            WhatsAppConnection.phone_number_id == update.phone_number_id,
            WhatsAppConnection.organization_id != connection.organization_id,
        )
    )
    if taken is not None:
        raise PhoneNumberTaken(f"Phone number id {update.phone_number_id} is connected to another organization")
    number = await _check_with_meta(runtime, update.phone_number_id, update.access_token)
    connection.type = "cloud_api"
    connection.phone_number_id = update.phone_number_id
    connection.waba_id = update.waba_id
    connection.phone_number = _e164(str(number.get("display_phone_number") or "")) or connection.phone_number
    connection.business_name = str(number.get("verified_name") or "")[:200] or connection.business_name
    connection.access_token_encrypted = runtime.secret_box.encrypt(update.access_token)
    connection.app_secret_encrypted = runtime.secret_box.encrypt(update.app_secret)
    connection.verify_token = update.verify_token
    connection.messages_per_second = update.messages_per_second
    _reset_health(connection)
    # Meta's templates replace the sandbox's: the first sync runs now, then every 15 minutes.
    connection.templates_synced_at = now()
    enqueue_sync(session, organization_id=connection.organization_id)


async def _check_with_meta(runtime: Runtime, phone_number_id: str, access_token: str) -> dict[str, object]:
    try:
        return await graph_client(runtime, access_token).phone_number(phone_number_id)
    except GraphError as error:
        if error.code == ACCESS_TOKEN_INVALID:
            raise CredentialsRejected(f"Meta rejected the access token (190): {error.message}") from None
        raise CredentialsRejected(
            f"Meta refused phone number id {phone_number_id} ({error.code}): {error.details or error.message}"
        ) from None
    except GraphUnreachable as error:
        raise GraphApiUnavailable(f"Could not reach the Graph API to check the credentials: {error}") from None

"""Choosing the provider of an organization's connection."""

from __future__ import annotations

from kaanha.models import WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.cloud_api.provider import CloudApiProvider
from kaanha.whatsapp.provider import WhatsAppProvider
from kaanha.whatsapp.sandbox.provider import SandboxProvider


def provider_for(connection: WhatsAppConnection, runtime: Runtime, *, attempt: int = 1) -> WhatsAppProvider:
    if connection.type == "cloud_api":
        return CloudApiProvider(runtime, connection, pair_limit_hits=max(0, attempt - 1))
    return SandboxProvider(runtime)

"""Choosing the provider of an organization's connection."""

from __future__ import annotations

from kaanha.errors import KaanhaError
from kaanha.models import WhatsAppConnection
from kaanha.runtime import Runtime
from kaanha.whatsapp.provider import WhatsAppProvider
from kaanha.whatsapp.sandbox.provider import SandboxProvider


class ProviderUnavailable(KaanhaError):
    status_code = 503
    code = "provider_unavailable"


def provider_for(connection: WhatsAppConnection, runtime: Runtime) -> WhatsAppProvider:
    if connection.type == "sandbox":
        return SandboxProvider(runtime)
    raise ProviderUnavailable(f"The '{connection.type}' connection is not available in this version")

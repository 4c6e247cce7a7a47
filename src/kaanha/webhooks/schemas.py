"""Public shapes of webhook endpoints, their secrets and their delivery log."""

from __future__ import annotations

from kaanha.kit.schemas import Schema, Timestamp
from kaanha.models import WebhookEndpoint


class WebhookEndpointOut(Schema):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    # Set when we turned the endpoint off after it failed for three days; cleared by re-enabling it.
    disabled_at: Timestamp | None
    disabled_reason: str | None
    failing_since: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


def endpoint_out(endpoint: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(endpoint)

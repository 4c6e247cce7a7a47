"""Public shapes of an organization's connection status."""

from __future__ import annotations

from typing import Literal

from kaanha.kit.schemas import Schema


class ConnectionStatus(Schema):
    connected: bool
    phone_number: str | None
    connection_type: Literal["cloud_api", "sandbox"]
    business_name: str | None
    reason: str | None = None

"""What the payment fakes share: the webhook they hand back, random ids, JSON answers."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class WebhookCall:
    """A webhook as the gateway would POST it: deliver `body` with `headers`, byte for byte."""

    event_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


def random_id(prefix: str, length: int = 14) -> str:
    return prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def json_response(body: dict[str, Any], status_code: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status_code, media_type="application/json")

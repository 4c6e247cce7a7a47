"""Standard Webhooks signing: endpoint secrets, the signed body and the headers every delivery carries."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from math import floor

import orjson
from standardwebhooks import Webhook

from kaanha import __version__
from kaanha.events.service import body
from kaanha.kit.clock import now
from kaanha.kit.crypto import SecretBox
from kaanha.models import Event, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)
# 24 random bytes (192 bits) as the Standard Webhooks reference implementations make them.
SECRET_BYTES = 24
USER_AGENT = f"Kaanha-Webhooks/{__version__}"


def new_secret() -> str:
    """A fresh signing secret, `whsec_` + base64 of 24 random bytes, as receivers' libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def event_body(event: Event) -> bytes:
    """The exact bytes sent (and signed): the event as `{id, type, timestamp, data}` JSON."""
    return orjson.dumps(body(event))


def signing_secrets(endpoint: WebhookEndpoint, box: SecretBox, *, at: datetime | None = None) -> list[str]:
    """The secrets that sign for `endpoint` now: its own, plus the one it replaced while that overlap lasts.

    Signing with both during a rotation lets the receiver switch its secret whenever it likes.
    """
    moment = at or now()
    keys = [box.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > moment:
        keys.append(box.decrypt(endpoint.previous_secret_encrypted))
    return keys


def signature_header(keys: Sequence[str], *, message_id: str, timestamp: datetime, content: bytes) -> str:
    """`v1,<base64>` per secret, space-separated: a receiver accepts the message if any one matches."""
    data = content.decode("utf-8")
    return " ".join(Webhook(key).sign(message_id, timestamp, data) for key in keys)


def signed_headers(
    keys: Sequence[str], *, message_id: str, content: bytes, at: datetime | None = None
) -> dict[str, str]:
    """The headers of one attempt. `message_id` is the event's id, the same on every retry, so receivers
    can recognise a delivery they already processed; the timestamp is the attempt's own."""
    moment = at or now()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(floor(moment.timestamp())),
        "webhook-signature": signature_header(keys, message_id=message_id, timestamp=moment, content=content),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }

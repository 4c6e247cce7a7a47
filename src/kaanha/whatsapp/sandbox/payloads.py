"""Meta-shaped webhook payloads made by the sandbox, so its events take the real inbound path."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

from kaanha.models import WhatsAppConnection


def new_wamid() -> str:
    """An opaque WhatsApp-style message id (`wamid.` and base64), as Meta's look."""
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18" + os.urandom(24)).decode()


def envelope(connection: WhatsAppConnection, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": connection.waba_id or "sandbox",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": (connection.phone_number or "").lstrip("+"),
                                "phone_number_id": connection.phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def status_payload(
    connection: WhatsAppConnection,
    *,
    wamid: str,
    status: str,
    recipient: str,
    at: datetime,
    callback_data: str | None = None,
) -> dict[str, Any]:
    item = {"id": wamid, "status": status, "timestamp": str(int(at.timestamp())), "recipient_id": recipient}
    if callback_data:
        item["biz_opaque_callback_data"] = callback_data
    return envelope(connection, {"statuses": [item]})


def message_payload(
    connection: WhatsAppConnection, *, sender: str, profile_name: str | None, message: dict[str, Any]
) -> dict[str, Any]:
    return envelope(
        connection,
        {
            "contacts": [{"profile": {"name": profile_name or ""}, "wa_id": sender}],
            "messages": [{"from": sender, **message}],
        },
    )

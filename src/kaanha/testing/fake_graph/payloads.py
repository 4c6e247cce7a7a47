"""Webhook bodies exactly as Meta posts them (see shared/whatsapp/payloads/*.json), and wamid ids.

Envelope: `{"object":"whatsapp_business_account","entry":[{"id":<waba>,"changes":[{"field","value"}]}]}`.
All timestamps in `value` are strings of Unix seconds; `entry[].time` of template events is an int.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Iterable
from typing import Any

from kaanha.testing.fake_graph.models import PhoneNumber


class WamidFactory:
    """Opaque, unique `wamid.` ids shaped like Meta's: base64 of the recipient and a hex message key."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._counter = itertools.count(1)

    def new(self, wa_id: str) -> str:
        key = f"{next(self._counter):06X}{self._rng.getrandbits(48):012X}".encode()
        number = wa_id.encode()[:127]
        raw = b"\x18" + bytes([len(number)]) + number + b"\x15\x02\x00\x11\x18\x12" + key + b"\x00"
        return "wamid." + base64.b64encode(raw).decode()


def envelope(entries: Iterable[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """A webhook body from (waba_id, changes) pairs."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": changes} for waba_id, changes in entries],
    }


def messages_change(phone: PhoneNumber, **value: Any) -> dict[str, Any]:
    """A `field: messages` change of a number: `value` gets messaging_product and metadata first."""
    return {
        "value": {"messaging_product": "whatsapp", "metadata": phone.metadata(), **value},
        "field": "messages",
    }


def statuses_envelope(items: Iterable[tuple[PhoneNumber, dict[str, Any]]]) -> dict[str, Any]:
    """Statuses of one batch: one entry per WABA, one change per number, statuses in the order given."""
    by_waba: dict[str, dict[str, tuple[PhoneNumber, list[dict[str, Any]]]]] = {}
    for phone, status in items:
        numbers = by_waba.setdefault(phone.waba_id, {})
        numbers.setdefault(phone.id, (phone, []))[1].append(status)
    return envelope(
        (waba_id, [messages_change(phone, statuses=statuses) for phone, statuses in numbers.values()])
        for waba_id, numbers in by_waba.items()
    )


def pricing(category: str) -> dict[str, Any]:
    """Per-message pricing (PMP): service replies inside the window are free, templates are billed."""
    free = category == "service"
    return {
        "billable": not free,
        "pricing_model": "PMP",
        "type": "free_customer_service" if free else "regular",
        "category": category,
    }


def status_item(
    *,
    wamid: str,
    status: str,
    timestamp: float,
    recipient_id: str,
    callback_data: str | None,
    category: str,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One `statuses[]` item; pricing rides on `sent` and `delivered` as on Meta (v24: no `conversation`)."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(timestamp)),
        "recipient_id": recipient_id,
    }
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if status in {"sent", "delivered"}:
        item["pricing"] = pricing(category)
    if errors:
        item["errors"] = errors
    return item


def inbound_text(
    phone: PhoneNumber, *, wa_id: str, name: str, wamid: str, text: str, timestamp: float
) -> dict[str, Any]:
    """A customer's text message, shaped like inbound_text.json."""
    message = {"from": wa_id, "id": wamid, "timestamp": str(int(timestamp)), "type": "text", "text": {"body": text}}
    change = messages_change(phone, contacts=[{"profile": {"name": name}, "wa_id": wa_id}], messages=[message])
    return envelope([(phone.waba_id, [change])])


def template_status_update(
    *, waba_id: str, template_id: str, name: str, language: str, category: str, event: str, time: float
) -> dict[str, Any]:
    """A `message_template_status_update` event, shaped like template_status_approved.json."""
    value = {
        "event": event,
        "message_template_id": int(template_id),
        "message_template_name": name,
        "message_template_language": language,
        "reason": "NONE",
        "message_template_category": category,
    }
    return {
        "entry": [
            {"id": waba_id, "time": int(time), "changes": [{"value": value, "field": "message_template_status_update"}]}
        ],
        "object": "whatsapp_business_account",
    }

"""WhatsApp's 24-hour customer service window: free-form messages only within 24 h of the customer's last message."""

from __future__ import annotations

from datetime import datetime, timedelta

from kaanha.errors import InvalidRequest
from kaanha.kit.clock import now

WINDOW = timedelta(hours=24)


class OutsideCustomerServiceWindow(InvalidRequest):
    code = "outside_customer_service_window"


def window_expires_at(last_inbound_at: datetime | None) -> datetime | None:
    return last_inbound_at + WINDOW if last_inbound_at else None


def is_window_open(last_inbound_at: datetime | None, *, at: datetime | None = None) -> bool:
    expires = window_expires_at(last_inbound_at)
    return expires is not None and (at or now()) < expires


def require_open_window(last_inbound_at: datetime | None, *, message_type: str) -> None:
    """Refuse a non-template send outside the window, as Meta would with error 131047."""
    if message_type == "template" or is_window_open(last_inbound_at):
        return
    if last_inbound_at is None:
        reason = "this contact has never messaged you"
    else:
        reason = f"this contact last wrote at {last_inbound_at.isoformat(timespec='seconds')}, over 24 hours ago"
    raise OutsideCustomerServiceWindow(
        f"Cannot send a '{message_type}' message: {reason}. WhatsApp only allows template messages "
        "outside the 24-hour customer service window; send a template instead."
    )

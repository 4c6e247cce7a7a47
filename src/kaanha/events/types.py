"""The event types we emit, and the API key scope a reader needs to see each family."""

from __future__ import annotations

MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_DELIVERED = "message.delivered"
MESSAGE_READ = "message.read"
MESSAGE_FAILED = "message.failed"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
# An AI agent gave the conversation to people: {conversationId, agentId, agentName, reason, note, handedOffAt}.
CONVERSATION_HANDED_OFF = "conversation.handed_off"
CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"
CONTACT_DELETED = "contact.deleted"
TEMPLATE_UPDATED = "template.updated"
BROADCAST_STARTED = "broadcast.started"
BROADCAST_PAUSED = "broadcast.paused"
BROADCAST_RESUMED = "broadcast.resumed"
BROADCAST_CANCELLED = "broadcast.cancelled"
BROADCAST_COMPLETED = "broadcast.completed"
PAYMENT_LINK_PAID = "payment_link.paid"
PAYMENT_LINK_EXPIRED = "payment_link.expired"
PAYMENT_LINK_CANCELLED = "payment_link.cancelled"
WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
# Sent only by `POST /webhooks/{id}/test`, to that endpoint; never logged or streamed.
PING = "ping"

EVENT_TYPES: tuple[str, ...] = (
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_DELIVERED,
    MESSAGE_READ,
    MESSAGE_FAILED,
    CONVERSATION_CREATED,
    CONVERSATION_UPDATED,
    CONVERSATION_HANDED_OFF,
    CONTACT_CREATED,
    CONTACT_UPDATED,
    CONTACT_DELETED,
    TEMPLATE_UPDATED,
    BROADCAST_STARTED,
    BROADCAST_PAUSED,
    BROADCAST_RESUMED,
    BROADCAST_CANCELLED,
    BROADCAST_COMPLETED,
    PAYMENT_LINK_PAID,
    PAYMENT_LINK_EXPIRED,
    PAYMENT_LINK_CANCELLED,
    WEBHOOK_ENDPOINT_DISABLED,
)

# A message's status -> the event that reports reaching it.
STATUS_EVENTS = {
    "sent": MESSAGE_SENT,
    "delivered": MESSAGE_DELIVERED,
    "read": MESSAGE_READ,
    "failed": MESSAGE_FAILED,
}

# The live stream shows a key only the families its scopes can read through the API.
READ_SCOPE_BY_FAMILY = {
    "message": "messages:read",
    "conversation": "conversations:read",
    "contact": "contacts:read",
    "template": "templates:read",
    "broadcast": "broadcasts:read",
    "payment_link": "payment_links:read",
    "webhook_endpoint": "webhooks:read",
}


def read_scope(event_type: str) -> str:
    return READ_SCOPE_BY_FAMILY.get(event_type.split(".", 1)[0], "webhooks:read")


def subscribed(wanted: list[str], event_type: str) -> bool:
    return "*" in wanted or event_type in wanted

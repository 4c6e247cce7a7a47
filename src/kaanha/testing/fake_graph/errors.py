"""Graph API errors shaped as Meta sends them, and the WhatsApp codes the fake answers with.

Clients must key on `code` (and `error_data.details`), never on the HTTP status or the wording, so the
fake uses Meta's codes and message style (`(#code) Title`) without promising Meta's exact text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

ERROR_CODES_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"
UNKNOWN_OBJECT = (
    "Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
    "permissions, or does not support this operation. Please read the Graph API documentation at "
    "https://developers.facebook.com/docs/graph-api"
)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What Meta says for a code: the title that goes after `(#code)`, default details and HTTP status."""

    title: str
    details: str
    http_status: int = 400


CATALOG: dict[int, ErrorInfo] = {
    0: ErrorInfo("AuthException", "We were unable to authenticate the app user.", 401),
    2: ErrorInfo("Service temporarily unavailable", "The service is temporarily unavailable.", 500),
    3: ErrorInfo("Capability or permissions issue", "The app lacks the capability for this API method.", 403),
    4: ErrorInfo("Application request limit reached", "The app has reached its API call rate limit.", 400),
    10: ErrorInfo("Permission denied", "Permission is not granted or has been removed.", 403),
    100: ErrorInfo("Invalid parameter", "Invalid parameter.", 400),
    190: ErrorInfo("Access token has expired", "The access token is invalid or has expired.", 401),
    368: ErrorInfo("Temporarily blocked for policies violations", "The account is restricted.", 400),
    2500: ErrorInfo("Unknown path components", "The path is not part of the Graph API.", 400),
    80007: ErrorInfo("Rate limit issues", "The WhatsApp Business Account has reached its rate limit.", 400),
    130429: ErrorInfo("Rate limit hit", "Cloud API message throughput has been reached.", 429),
    130472: ErrorInfo(
        "User's number is part of an experiment", "Failed to send message because of an experiment.", 400
    ),
    130497: ErrorInfo("Business account is restricted from messaging users in this country", "Restricted.", 400),
    131000: ErrorInfo("Something went wrong", "Message failed to send due to an unknown error.", 500),
    131008: ErrorInfo("Required parameter is missing", "A required parameter is missing.", 400),
    131009: ErrorInfo("Parameter value is not valid", "One or more parameter values are invalid.", 400),
    131026: ErrorInfo("Message undeliverable", "Message Undeliverable.", 400),
    131030: ErrorInfo("Recipient phone number not in allowed list", "Add the number to the allowed list.", 400),
    131031: ErrorInfo("Account has been locked", "The business account is restricted or disabled.", 400),
    131047: ErrorInfo(
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131048: ErrorInfo("Spam rate limit hit", "Too many previous messages were blocked or flagged as spam.", 400),
    131049: ErrorInfo(
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    ),
    131050: ErrorInfo("User has stopped marketing messages", "The user opted out of marketing messages.", 400),
    131051: ErrorInfo("Unsupported message type", "Message type is currently not supported.", 400),
    131052: ErrorInfo("Media download error", "Unable to download the media sent by the user.", 400),
    131053: ErrorInfo("Media upload error", "Unable to upload the media used in the message.", 400),
    131056: ErrorInfo(
        "(Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone number in a short period "
        "of time.",
    ),
    131057: ErrorInfo("Account in maintenance mode", "The number is being upgraded to higher throughput.", 400),
    131064: ErrorInfo("Messaging limit reached", "Template classification violations.", 400),
    132000: ErrorInfo(
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values does not match the number of variables in the template.",
    ),
    132001: ErrorInfo(
        "Template name does not exist in the translation", "template name does not exist in the translation"
    ),
    132005: ErrorInfo("Translated text too long", "The translated text is too long.", 400),
    132007: ErrorInfo("Template format character policy violated", "Template content violates a policy.", 400),
    132008: ErrorInfo("Template parameter format mismatch", "A variable parameter value is malformed.", 400),
    132012: ErrorInfo("Parameter format does not match format in the created template", "Format mismatch.", 400),
    132015: ErrorInfo("Template is paused", "The template has been paused due to low quality.", 400),
    132016: ErrorInfo("Template is disabled", "The template has been disabled due to low quality.", 400),
    132068: ErrorInfo("Flow is in blocked state", "The flow is blocked.", 400),
    132069: ErrorInfo(
        "Flow is in throttled state", "10 messages using this flow were already sent in the last hour.", 400
    ),
    133016: ErrorInfo("Account register deregister rate limit exceeded", "Too many register attempts.", 400),
    135000: ErrorInfo("Generic user error", "Message failed to send because of an unknown error.", 400),
}


def info(code: int) -> ErrorInfo:
    """The catalogue entry of `code`, or a generic one so any code can be injected."""
    return CATALOG.get(code) or ErrorInfo("Error", f"Error {code}.", 400)


class GraphError(Exception):
    """A refusal in Meta's error shape; raised anywhere in the fake and turned into the HTTP answer."""

    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        message: str | None = None,
        http_status: int | None = None,
        subcode: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        entry = info(code)
        self.code = code
        self.details = details or entry.details
        self.message = message or f"(#{code}) {entry.title}"
        self.http_status = http_status or entry.http_status
        self.subcode = subcode
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The JSON body: `{"error": {message, type, code, error_data, [error_subcode], fbtrace_id}}`."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error.update(self.extra)
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)[:22]
        return {"error": error}


def invalid(details: str) -> GraphError:
    """Code 100, Meta's answer to a missing, misspelled or out-of-range field."""
    return GraphError(100, details)


def unknown_object(object_id: str, method: str = "get") -> GraphError:
    """What Graph answers for an id that names nothing it knows (subcode 33)."""
    return GraphError(
        100,
        f"Object with ID '{object_id}' does not exist.",
        message=UNKNOWN_OBJECT.format(method=method, object_id=object_id),
        subcode=33,
    )


def status_error(code: int) -> dict[str, Any]:
    """An item of `statuses[].errors[]` in a `failed` status webhook."""
    entry = info(code)
    return {
        "code": code,
        "title": entry.title,
        "message": entry.title,
        "error_data": {"details": entry.details},
        "href": ERROR_CODES_HREF,
    }

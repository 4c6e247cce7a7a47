"""What each of Meta's error codes means for a message: retry it, or fail it and tell people what to do.

Meta asks integrators to key on `code` (titles in `message` are being deprecated), so this table is
by code; anything unknown is treated as permanent, because resending a message Meta refused for a
reason we don't understand risks a duplicate or a block, while a failure with Meta's own words is
something a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from kaanha.whatsapp.cloud_api.client import GraphError, GraphUnreachable
from kaanha.whatsapp.provider import ProviderError

PAIR_RATE_LIMIT = 131056
ACCESS_TOKEN_INVALID = 190
# The customer stopped marketing messages from this business (WhatsApp's own opt-out).
MARKETING_STOPPED = 131050


@dataclass(frozen=True)
class ErrorRule:
    retryable: bool
    explanation: str


THROTTLED = ErrorRule(True, "Meta is throttling this number; the message is retried with backoff.")

RULES: dict[int, ErrorRule] = {
    4: ErrorRule(True, "The app made too many Graph API calls; the message is retried with backoff."),
    80007: ErrorRule(True, "The WhatsApp Business Account reached its rate limit; the message is retried."),
    130429: THROTTLED,
    PAIR_RATE_LIMIT: ErrorRule(
        True, "Too many messages to this customer in a short time; the message is retried after a pause."
    ),
    131057: ErrorRule(True, "The number is being upgraded to a higher throughput; the message is retried."),
    131000: ErrorRule(True, "Something went wrong at Meta; the message is retried."),
    1: ErrorRule(True, "An unknown error at Meta; the message is retried."),
    2: ErrorRule(True, "Meta's service is temporarily unavailable; the message is retried."),
    0: ErrorRule(False, "Meta could not authenticate the app: check the access token and the app's permissions."),
    3: ErrorRule(
        False, "The app lacks the capability for this call: check its WhatsApp permissions in Meta's console."
    ),
    10: ErrorRule(False, "A permission is missing or was removed: grant whatsapp_business_messaging to the app."),
    ACCESS_TOKEN_INVALID: ErrorRule(
        False, "Meta rejected the access token (expired or revoked): reconnect with a new token (PUT /connection)."
    ),
    100: ErrorRule(False, "Meta refused a parameter of the request: check the message's fields."),
    368: ErrorRule(False, "The number is temporarily blocked for a policy violation: see Meta's Business Support."),
    131026: ErrorRule(
        False,
        "The message could not be delivered: the number may not use WhatsApp, may not have accepted the "
        "latest terms, runs an old app version, or blocked the business.",
    ),
    131031: ErrorRule(False, "The business account is locked or restricted: see Meta's Business Support."),
    131047: ErrorRule(
        False,
        "More than 24 hours have passed since the customer last wrote: only an approved template can be sent now.",
    ),
    131048: ErrorRule(False, "Too many of this number's messages were blocked or flagged as spam: improve quality."),
    131049: ErrorRule(
        False,
        "Meta did not deliver this marketing message to keep engagement healthy; don't retry soon, try "
        "again in a day or more.",
    ),
    131050: ErrorRule(False, "The customer stopped marketing messages from this business: don't send them marketing."),
    131051: ErrorRule(False, "This message type is not supported."),
    131052: ErrorRule(False, "Meta could not download the customer's media."),
    131053: ErrorRule(False, "Meta could not use the media (type, size, or the link could not be downloaded)."),
    131008: ErrorRule(False, "A required parameter is missing."),
    131009: ErrorRule(False, "A parameter value is not valid."),
    131030: ErrorRule(False, "The recipient is not in the test number's allowed list: add it in Meta's console."),
    131064: ErrorRule(False, "The messaging limit was reached because of template classification violations."),
    130472: ErrorRule(False, "The customer's number is part of a Meta experiment; marketing messages are held."),
    130497: ErrorRule(False, "The business may not message customers in this country."),
    132000: ErrorRule(False, "The number of template parameters does not match the template: check each component."),
    132001: ErrorRule(
        False, "The template does not exist in this language or is not approved: check its name and language."
    ),
    132005: ErrorRule(False, "The template's text is too long once its parameters are filled in."),
    132007: ErrorRule(False, "The template's content breaks WhatsApp's policies."),
    132008: ErrorRule(False, "A template parameter's value or format is not valid."),
    132012: ErrorRule(False, "A template parameter's format does not match the template."),
    132015: ErrorRule(False, "The template is paused for low quality: edit it or use another."),
    132016: ErrorRule(False, "The template is disabled for low quality: create another."),
    132068: ErrorRule(False, "The flow is blocked."),
    132069: ErrorRule(False, "The flow is throttled (10 messages per hour with this flow)."),
    133016: ErrorRule(True, "Too many register or deregister attempts; retried later."),
    135000: ErrorRule(False, "Meta refused the request (a generic user error): check the message's fields."),
}


def rule_for(code: int | None) -> ErrorRule | None:
    if code is None:
        return None
    if code in RULES:
        return RULES[code]
    if 200 <= code <= 299:
        return RULES[10]
    return None


def explain(code: int | None) -> str | None:
    """The readable explanation of a Meta error code, or None when it is not one we know."""
    rule = rule_for(code)
    return rule.explanation if rule else None


def provider_error(error: GraphError | GraphUnreachable, *, pair_limit_hits: int = 0) -> ProviderError:
    """Meta's error as a ProviderError: retryable for throttling, 5xx and no answer; permanent otherwise."""
    if isinstance(error, GraphUnreachable):
        return ProviderError(
            0, f"No answer from the Graph API ({error})", retryable=True, explanation="Meta did not answer; retried."
        )
    rule = rule_for(error.code)
    message = error.details or error.message
    if error.http_status >= 500:
        explanation = (
            rule.explanation if rule and rule.retryable else "Meta had a server error; the message is retried."
        )
        return ProviderError(error.code, message, retryable=True, explanation=explanation)
    if rule is None and error.http_status in (408, 429):
        # Throttled or timed out without one of Meta's error bodies: still a reason to wait, not to give up.
        return ProviderError(error.code, message, retryable=True, explanation=THROTTLED.explanation)
    if rule is None:
        return ProviderError(error.code, message, retryable=False, explanation=f"Meta refused the message: {message}")
    retry_after = None
    if error.code == PAIR_RATE_LIMIT:
        # Meta's advice for the pair rate limit: wait 4^X seconds, X the number of hits so far.
        retry_after = timedelta(seconds=min(4**pair_limit_hits, 3600))
    return ProviderError(
        error.code, message, retryable=rule.retryable, explanation=rule.explanation, retry_after=retry_after
    )

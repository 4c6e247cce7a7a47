"""The error tree: every failure a client can cause is a KaanhaError rendered as {"error", "code"}."""

from __future__ import annotations

from typing import ClassVar


class KaanhaError(Exception):
    """Base of every error shown to a client.

    Subclasses fix `status_code` and `code`; the message says what went wrong and what to do.
    """

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(KaanhaError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(KaanhaError):
    status_code = 401
    code = "unauthorized"


class Forbidden(KaanhaError):
    status_code = 403
    code = "forbidden"


class NotFound(KaanhaError):
    status_code = 404
    code = "not_found"


class Conflict(KaanhaError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(KaanhaError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(KaanhaError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(KaanhaError):
    status_code = 429
    code = "rate_limited"

"""Every error leaves as {"error", "code"} JSON: ours, validation (400, never 422), routing, and crashes (500)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaanha.errors import KaanhaError
from kaanha.http.responses import JsonResponse

logger = logging.getLogger("kaanha.http")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
}

_STATUS_MESSAGES = {
    404: "No such endpoint: check the path against the API reference",
    405: "This method is not allowed on this endpoint",
    413: "The request body is too large",
}


def error_response(status_code: int, message: str, code: str, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "code": code}, status_code=status_code, headers=headers)


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts)


def describe_validation_errors(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """A readable sentence for pydantic's errors, and a code (invalid_json for unparseable bodies)."""
    if any(error.get("type") == "json_invalid" for error in errors):
        return "The request body is not valid JSON", "invalid_json"
    messages = []
    for error in errors[:5]:
        field = _field_path(tuple(error.get("loc", ())))
        message = str(error.get("msg", "is invalid"))
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if error.get("type") == "missing":
            message = "is required"
        elif error.get("type") == "extra_forbidden":
            message = "is not a known field"
        messages.append(f"{field}: {message}" if field else message)
    extra = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(messages) + extra, "validation_error"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KaanhaError)
    async def _kaanha_error(_request: Request, error: KaanhaError) -> JsonResponse:
        return error_response(error.status_code, error.message, error.code, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JsonResponse:
        message, code = describe_validation_errors(list(error.errors()))
        return error_response(400, message, code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JsonResponse:
        code = _STATUS_CODES.get(error.status_code, "http_error")
        detail = error.detail if isinstance(error.detail, str) else None
        generic = detail in (None, "Not Found", "Method Not Allowed", "Request Entity Too Large")
        message = _STATUS_MESSAGES.get(error.status_code, detail or "Request failed") if generic else detail
        return error_response(error.status_code, str(message), code, dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, error: Exception) -> JsonResponse:
        request_id = getattr(request.state, "request_id", "-")
        logger.exception("unhandled error on %s %s [request %s]", request.method, request.url.path, request_id)
        return error_response(
            500,
            f"Internal server error; it was logged with request id {request_id}. Please retry or report it.",
            "internal_error",
            {"X-Request-ID": request_id},
        )

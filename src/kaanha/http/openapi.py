"""OpenAPI touches: every operation documents its error responses in the {"error", "code"} shape."""

from __future__ import annotations

import json
from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do"},
        "code": {"type": "string", "description": "A stable snake_case code"},
    },
}

_ERRORS = {
    "400": "Bad request (missing or invalid fields)",
    "401": "Unauthorized (missing, malformed, unknown, revoked or expired API key)",
    "403": "Forbidden (the API key lacks a scope)",
    "404": "Not found",
    "429": "Rate limit exceeded (see Retry-After)",
    "500": "Server error",
}
_EXTRA = {"post": {"409": "Conflict (duplicate resource or reused Idempotency-Key)", "413": "Body too large"}}


def describe_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            wanted = dict(_ERRORS)
            wanted.update(_EXTRA.get(method, {}))
            if path.endswith("/media") and method == "post":
                wanted["413"] = "The file is larger than 16 MB"
                wanted["415"] = "Unsupported media type"
            for status, description in wanted.items():
                responses.setdefault(status, {"description": description, "content": error_content})
    # Validation errors answer 400 with Error, so FastAPI's 422 shapes would only mislead client generators.
    schemas = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if f'"#/components/schemas/{name}"' not in json.dumps(schema):
            schemas.pop(name, None)
    return schema

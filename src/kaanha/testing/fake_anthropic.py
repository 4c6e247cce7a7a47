"""A fake of Anthropic's Messages API: `POST /v1/messages` as Anthropic documents it, errors included.

Needs `x-api-key` (401 `authentication_error` otherwise) and `anthropic-version` (400); checks the body
(`model`, `max_tokens`, `messages` alternating and starting with the user: 400 `invalid_request_error`);
answers `{id, type: "message", role, content: [{type: "text", text}], stop_reason, usage}`. When
scripted: 429 `rate_limit_error` with `retry-after`, 500 `api_error`, 529 `overloaded_error`, or a
late answer. Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kaanha.testing.llm_script import LlmScript

ERRORS = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Any:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{uuid.uuid4().hex}"}
    return JSONResponse(body, status_code=status, headers=headers)


class FakeAnthropic:
    def __init__(self, *, api_key: str = "sk-ant-test-kaanha") -> None:
        self.script = LlmScript(api_key=api_key)
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Any:
        if request.headers.get("x-api-key") != self.script.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "The request body is not valid JSON.")
        problem = _check(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        self.script.requests.append(body)
        step = await self.script.next_step()
        if step.status is not None:
            kind, message = ERRORS.get(step.status, ("api_error", "Internal server error"))
            headers = {"retry-after": f"{step.retry_after:g}"} if step.retry_after is not None else None
            return _error(step.status, kind, message, headers)
        system = body.get("system") or ""
        question = str(body["messages"][-1]["content"])
        text = self.script.reply(system if isinstance(system, str) else str(system), question)
        return JSONResponse(
            {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": len(str(body).split()), "output_tokens": len(text.split())},
            }
        )


def _check(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not body.get("model"):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for number, message in enumerate(messages):
        expected = "user" if number % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != expected:
            return f"messages: roles must alternate between 'user' and 'assistant', starting with 'user' (at {number})"
    return None

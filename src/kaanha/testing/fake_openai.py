"""A fake OpenAI-compatible server: `POST /v1/chat/completions` as OpenAI documents it, errors included.

Answers in the chat completion shape (`choices[0].message.content`, `usage`); refuses a missing or
wrong `Authorization: Bearer` key with 401 `invalid_api_key`, a body without `model` or `messages`
with 400 `invalid_request_error`; `max_tokens` sent to a reasoning model (o1, o3, o4-mini, gpt-5...)
with 400 `unsupported_parameter`, as OpenAI does (those take `max_completion_tokens`, which every
model accepts); and, when scripted, answers 429 `rate_limit_exceeded` (with
`retry-after`), 500 `server_error` or 503, or answers late (to exercise timeouts). Use `app` with
httpx.ASGITransport, or serve it on loopback with kaanha.testing.fake_graph.server.BackgroundServer.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kaanha.kit.clock import now
from kaanha.testing.llm_script import LlmScript

ERRORS = {
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def _error(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    headers: dict[str, str] | None = None,
    *,
    param: str | None = None,
) -> Any:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# Models that count reasoning tokens: OpenAI refuses the deprecated `max_tokens` for them.
REASONING_MODELS = re.compile(r"^(o\d|gpt-5)")


class FakeOpenAI:
    def __init__(self, *, api_key: str = "sk-test-kaanha") -> None:
        self.script = LlmScript(api_key=api_key)
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])

    async def _completions(self, request: Request) -> Any:
        authorization = request.headers.get("authorization", "")
        if authorization != f"Bearer {self.script.api_key}":
            shown = authorization.removeprefix("Bearer ")[-4:]
            return _error(
                401,
                f"Incorrect API key provided: ...{shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "you must provide a model parameter", "invalid_request_error", None)
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' is a required property", "invalid_request_error", None)
        if "max_tokens" in body and REASONING_MODELS.match(str(body["model"])):
            return _error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "invalid_request_error",
                "unsupported_parameter",
                param="max_tokens",
            )
        for name in ("max_tokens", "max_completion_tokens"):
            if name in body and (not isinstance(body[name], int) or isinstance(body[name], bool) or body[name] < 1):
                message = f"Invalid '{name}': expected an integer of at least 1."
                return _error(400, message, "invalid_request_error", None, param=name)
        self.script.requests.append(body)
        step = await self.script.next_step()
        if step.status is not None:
            message, kind, code = ERRORS.get(step.status, ("Error", "server_error", None))
            headers = {"retry-after": f"{step.retry_after:g}"} if step.retry_after is not None else None
            return _error(step.status, message, kind, code, headers)
        system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        question = str(messages[-1].get("content", ""))
        text = self.script.reply(system, question)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(now().timestamp()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(system.split()) + len(question.split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": len(system.split()) + len(question.split()) + len(text.split()),
                },
            }
        )

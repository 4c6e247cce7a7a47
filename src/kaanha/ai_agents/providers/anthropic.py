"""Anthropic's Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`)."""

from __future__ import annotations

from typing import Any

import httpx

from kaanha.ai_agents.providers.base import AnswerRequest, ProviderAnswer, ProviderFailure, is_handoff, system_prompt
from kaanha.ai_agents.providers.http import post_json
from kaanha.kit.urls import Resolver

API_VERSION = "2023-06-01"
MAX_TOKENS = 400


class AnthropicProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        connect_timeout: float,
        resolver: Resolver | None = None,
    ) -> None:
        """`resolver`: check and pin the server's address (see post_json); None calls the URL as it is."""
        self.client = client
        self.resolver = resolver
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    async def answer(self, request: AnswerRequest) -> ProviderAnswer:
        messages: list[dict[str, str]] = []
        for turn in request.history:
            role = "user" if turn.role == "customer" else "assistant"
            if messages and messages[-1]["role"] == role:
                # The API wants turns to alternate: consecutive messages of one side become one turn.
                messages[-1]["content"] += "\n" + turn.text
            else:
                messages.append({"role": role, "content": turn.text})
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"] += "\n" + request.question
        else:
            messages.append({"role": "user", "content": request.question})
        if messages[0]["role"] != "user":
            messages = messages[1:]  # the first turn must be the user's
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": MAX_TOKENS,
            "system": system_prompt(request),
            "messages": messages,
        }
        answer = await post_json(
            self.client,
            self.url,
            headers={"x-api-key": self.api_key, "anthropic-version": API_VERSION},
            body=body,
            limit_seconds=self.timeout,
            connect_seconds=self.connect_timeout,
            resolver=self.resolver,
        )
        content = answer.get("content")
        if not isinstance(content, list):
            raise ProviderFailure("the answer had no content blocks", retryable=True)
        text = "".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
        return ProviderAnswer(None if is_handoff(text) else text.strip())

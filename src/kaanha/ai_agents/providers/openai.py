"""OpenAI-compatible chat completions (`POST {baseUrl}/chat/completions`): OpenAI and any server speaking it."""

from __future__ import annotations

from typing import Any

import httpx

from kaanha.ai_agents.providers.base import AnswerRequest, ProviderAnswer, ProviderFailure, is_handoff, system_prompt
from kaanha.ai_agents.providers.http import post_json
from kaanha.kit.urls import Resolver

MAX_TOKENS = 400
OPENAI_HOST = "api.openai.com"
# OpenAI's own API takes `max_completion_tokens`: `max_tokens` is deprecated there and refused (400
# unsupported_parameter) by its reasoning models (o-series, gpt-5). Their reasoning counts against the
# limit too, so it leaves room for thinking; a short answer is still asked for by the prompt.
MAX_COMPLETION_TOKENS = 2000


class OpenAIProvider:
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
        self.url = base_url.rstrip("/") + "/chat/completions"
        # Other servers speaking the protocol (vLLM, Ollama, llama.cpp, LM Studio, Groq, Together,
        # OpenRouter...) all take `max_tokens`; not all of them know the newer name.
        self.token_limit = (
            {"max_completion_tokens": MAX_COMPLETION_TOKENS}
            if httpx.URL(base_url).host == OPENAI_HOST
            else {"max_tokens": MAX_TOKENS}
        )
        self.api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    async def answer(self, request: AnswerRequest) -> ProviderAnswer:
        messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt(request)}]
        for turn in request.history:
            messages.append({"role": "user" if turn.role == "customer" else "assistant", "content": turn.text})
        messages.append({"role": "user", "content": request.question})
        body: dict[str, Any] = {"model": request.model, "messages": messages, **self.token_limit}
        answer = await post_json(
            self.client,
            self.url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            body=body,
            limit_seconds=self.timeout,
            connect_seconds=self.connect_timeout,
            resolver=self.resolver,
        )
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise ProviderFailure("the answer had no choices[0].message.content", retryable=True) from error
        if not text and choice.get("finish_reason") == "length":
            # A reasoning model can spend the whole limit thinking: that is a failure, not "I don't know".
            raise ProviderFailure("the model reached its token limit before answering", retryable=False)
        if not isinstance(text, str):
            raise ProviderFailure("the answer's content was not text", retryable=True)
        return ProviderAnswer(None if is_handoff(text) else text.strip())

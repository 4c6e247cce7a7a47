"""One model call: a total time limit, the server's address checked and pinned, errors sorted into retry or not."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx

from kaanha.ai_agents.providers.base import ProviderFailure
from kaanha.kit.urls import Resolver
from kaanha.webhooks.transport import Refused, pinned_post

# 408, 409 and 429 are worth one more try (timeouts, conflicts, rate limits); so is any 5xx, Anthropic's 529 too.
RETRYABLE_STATUSES = {408, 409, 429}
# A chat completion of a few hundred tokens is a few KiB; a server sending more is not a model answering.
MAX_ANSWER_BYTES = 1024 * 1024


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    limit_seconds: float,
    connect_seconds: float,
    resolver: Resolver | None = None,
) -> dict[str, Any]:
    """POST `body` and return the JSON answer, or raise ProviderFailure.

    With a `resolver`, the base URL is a user's to choose, so the call goes through the webhooks'
    checked transport: the host is resolved, private, loopback and metadata addresses are refused,
    and the connection goes to the address checked (a DNS answer that changes after the agent was
    saved changes nothing). Without one (KAANHA_ALLOW_PRIVATE_URLS) the URL is called as it is.
    httpx's timeouts bound each phase (a server trickling bytes could last forever), so the whole
    call is also bounded by `limit_seconds`: a slow model is a failed model, and the customer is not kept waiting.
    """
    content = json.dumps(body).encode()
    request_headers = {**headers, "content-type": "application/json"}
    timeout = httpx.Timeout(limit_seconds, connect=connect_seconds)
    try:
        async with asyncio.timeout(limit_seconds):
            async with _post(client, url, resolver, content=content, headers=request_headers, timeout=timeout) as sent:
                status, reason, retry_after = sent.status_code, sent.reason_phrase, _retry_after(sent)
                data = await _read(sent)
    except (TimeoutError, httpx.TimeoutException) as error:
        raise ProviderFailure(f"no answer within {limit_seconds:g} s", retryable=True) from error
    except Refused as refusal:
        raise ProviderFailure(f"refused to call {httpx.URL(url).host}: {refusal}", retryable=False) from None
    except httpx.HTTPError as error:
        raise ProviderFailure(
            f"could not reach {httpx.URL(url).host}: {type(error).__name__}", retryable=True
        ) from error
    if 300 <= status < 400:
        raise ProviderFailure(f"HTTP {status}: the server redirected; give its final URL as baseUrl", retryable=False)
    if status >= 400:
        raise ProviderFailure(
            f"HTTP {status}: {_error_message(data, reason)}",
            retryable=status in RETRYABLE_STATUSES or status >= 500,
            retry_after=retry_after,
        )
    try:
        answer = json.loads(data)
    except ValueError as error:
        raise ProviderFailure("the answer was not JSON", retryable=True) from error
    if not isinstance(answer, dict):
        raise ProviderFailure("the answer was not a JSON object", retryable=True)
    return answer


def _post(
    client: httpx.AsyncClient,
    url: str,
    resolver: Resolver | None,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout: httpx.Timeout,
) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    if resolver is None:
        return client.stream("POST", url, content=content, headers=headers, timeout=timeout, follow_redirects=False)
    return pinned_post(
        client, url, resolver=resolver, allow_private=False, content=content, headers=headers, timeouts=timeout
    )


async def _read(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            raise ProviderFailure(f"the answer was larger than {MAX_ANSWER_BYTES // 1024} KiB", retryable=False)
    return bytes(data)


def _error_message(data: bytes, reason: str) -> str:
    """The provider's own words (OpenAI and Anthropic both put them in error.message), kept short."""
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        error = None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or reason or "error")[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None

"""upload_media's fetch: the address checked is the address connected to, hop by hop (no DNS rebinding)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from kaanha.mcp_server.media import MediaFetchFailed, upload_from_url
from kaanha.runtime import Runtime
from tests.conftest import Tenant
from tests.webhooks.delivery_support import TableResolver

PUBLIC = "93.184.215.14"  # looks public; the recording transport stands in for it, nothing is sent there
OTHER_PUBLIC = "93.184.215.15"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Rebinding(TableResolver):
    """Answers a public address first, then the next answers in its list: a DNS rebinding attack."""

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        answers = self.table[host]
        return [answers[min(len(self.asked), len(answers)) - 1]]


@pytest_asyncio.fixture
async def requests(runtime: Runtime) -> AsyncIterator[list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://cdn.example.com/photo.png"})
        return httpx.Response(200, stream=httpx.ByteStream(PNG), headers={"content-type": "image/png"})

    original_http, original_resolver, allowed = runtime.http, runtime.resolver, runtime.settings.allow_private_urls
    runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    runtime.settings.allow_private_urls = False
    yield seen
    await runtime.http.aclose()
    runtime.http, runtime.resolver = original_http, original_resolver
    runtime.settings.allow_private_urls = allowed


async def fetch(runtime: Runtime, tenant: Tenant, url: str) -> str:
    async with runtime.database.transaction() as session:
        stored = await upload_from_url(session, runtime, organization_id=tenant.organization_id, url=url, filename=None)
    return stored.mime_type


async def test_each_hop_connects_to_the_address_that_was_checked(runtime, tenant, requests):
    runtime.resolver = TableResolver({"media.example.com": [PUBLIC], "cdn.example.com": [OTHER_PUBLIC]})

    assert await fetch(runtime, tenant, "https://media.example.com/moved") == "image/png"

    assert [(request.url.host, request.headers["host"]) for request in requests] == [
        (PUBLIC, "media.example.com"),
        (OTHER_PUBLIC, "cdn.example.com"),
    ]
    assert requests[0].extensions["sni_hostname"] == "media.example.com"


async def test_a_name_that_turns_private_after_the_check_is_never_connected_to(runtime, tenant, requests):
    runtime.resolver = Rebinding({"media.example.com": [PUBLIC, "169.254.169.254"]})

    with pytest.raises(MediaFetchFailed, match="refused"):
        await fetch(runtime, tenant, "https://media.example.com/photo.png")
    assert requests == []

"""Media from a URL for the `upload_media` tool: each hop's address checked, size bounded, then stored as an upload."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import InvalidRequest
from kaanha.media import service as media
from kaanha.media.schemas import MediaOut
from kaanha.runtime import Runtime
from kaanha.webhooks.service import check_target_url
from kaanha.webhooks.transport import Refused, pinned_get

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 256 * 1024
FETCH_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0


class MediaFetchFailed(InvalidRequest):
    code = "media_fetch_failed"


async def upload_from_url(
    session: AsyncSession, runtime: Runtime, *, organization_id: str, url: str, filename: str | None
) -> MediaOut:
    """Download `url` and store it as `POST /media` stores an upload (sniffed type, 16 MB limit).

    Every hop (redirects included) is refused when it is, or resolves to, a private, loopback or
    link-local address, unless KAANHA_ALLOW_PRIVATE_URLS.
    """
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        await check_target_url(runtime, current)
        try:
            async with _get(runtime, current) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise MediaFetchFailed(f"Fetching '{url}' answered HTTP {response.status_code}; check the URL")
                return await media.store_upload(
                    session,
                    organization_id=organization_id,
                    store=runtime.media_store,
                    chunks=_chunks(response),
                    filename=filename or _name_in(current),
                    max_bytes=runtime.settings.max_upload_bytes,
                )
        except Refused as refusal:
            raise MediaFetchFailed(f"Fetching '{url}' was refused: {refusal}") from None
        except httpx.HTTPError as error:
            raise MediaFetchFailed(f"Fetching '{url}' failed ({type(error).__name__}); check the URL") from None
    raise MediaFetchFailed(f"Fetching '{url}' was redirected more than {MAX_REDIRECTS} times")


def _get(runtime: Runtime, url: str) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    """The GET, connected to the address that was checked, so a DNS answer changed since can't redirect it."""
    headers = {"accept-encoding": "identity"}
    if runtime.settings.allow_private_urls:
        return runtime.http.stream("GET", url, follow_redirects=False, headers=headers)
    return pinned_get(
        runtime.http,
        url,
        resolver=runtime.resolver,
        allow_private=False,
        headers=headers,
        timeouts=httpx.Timeout(FETCH_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in response.aiter_raw(CHUNK):
        yield chunk


def _name_in(url: str) -> str | None:
    return urlsplit(url).path.rsplit("/", 1)[-1] or None

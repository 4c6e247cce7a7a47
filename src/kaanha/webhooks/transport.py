"""The one safe POST to a customer's URL: addresses checked and pinned, redirects checked, time and size bounded.

A webhook target is a URL a user typed, so each attempt resolves its host, refuses private, loopback,
link-local and metadata addresses (unless KAANHA_ALLOW_PRIVATE_URLS), and connects to the address it
checked: the URL's host becomes that IP literal, the `Host` header and the TLS server name (SNI) keep
the real name, so certificates are verified for it and a DNS answer that changes between the check
and the connection (DNS rebinding) changes nothing. Every redirect hop is checked the same way.
AI agents' model calls (a base URL a user typed too) go through `pinned_post`, the same check and pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from kaanha.kit.urls import Resolver, UnsafeUrl, check_public_url, embedded_ipv4, is_public_address
from kaanha.runtime import Runtime

logger = logging.getLogger("kaanha.webhooks")

MAX_REDIRECTS = 3
# Enough for any acknowledgement; a receiver that streams more is cut off, not waited for.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 1000
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Lookups run in threads of their own: a name server that never answers ties up one of these, never
# the default executor that the rest of the process shares. Sized past the dispatcher's concurrency.
_LOOKUP_THREADS = 96
_lookup_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to; `error` says why it failed when no status code says it."""

    succeeded: bool
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None
    error: str | None


class Refused(Exception):
    """The target (or a redirect) may not be called; the message is shown to the user as is."""


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the user (or a Location header) wrote it
    address: str  # the checked address we connect to

    @property
    def pinned(self) -> httpx.URL:
        return self.url.copy_with(host=self.address)

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")

    @property
    def extensions(self) -> dict[str, str]:
        # TLS must verify the certificate for the name, not for the address we dialled.
        if self.url.scheme == "https" and not _is_ip_literal(self.url.host):
            return {"sni_hostname": self.url.raw_host.decode("ascii")}
        return {}


async def post(runtime: Runtime, url: str, *, content: bytes, headers: Mapping[str, str]) -> AttemptResult:
    """POST `content` to `url` as a webhook attempt. Never raises (except cancellation): every outcome is a result.

    Succeeds on a 2xx. The whole attempt (lookups, connections, redirects, reading the answer) is
    bounded by `webhooks.timeout_seconds`; at most 64 KiB of the answer is read and its first
    1,000 characters kept.
    """
    settings = runtime.settings
    limit = settings.webhooks.timeout_seconds
    started = time.monotonic()
    progress = _Progress()
    try:
        async with asyncio.timeout(limit):
            await _post(runtime, url, content=content, headers=headers, progress=progress)
    except (TimeoutError, httpx.TimeoutException):
        # A 2xx whose body is still trickling in when time runs out was an answer all the same.
        if progress.status_code is None or progress.redirecting:
            progress.error = f"timed out after {limit:g} s"
    except Refused as refusal:
        progress.error = f"refused: {refusal}"
    except httpx.HTTPError as error:
        if progress.status_code is None or progress.redirecting:
            progress.error = _describe(error)
    except Exception as error:
        # Not expected: keep the attempt's outcome honest and the dispatcher running.
        logger.exception("webhook attempt to %s failed unexpectedly", _loggable(url), exc_info=error)
        progress.error = f"unexpected error ({type(error).__name__})"
    duration_ms = round((time.monotonic() - started) * 1000)
    return progress.result(duration_ms)


class _Progress:
    """How far an attempt got, so that a timeout or a broken connection still reports what was seen."""

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.redirecting = False
        self.body = bytearray()
        self.encoding: str | None = None
        self.error: str | None = None

    def result(self, duration_ms: int) -> AttemptResult:
        succeeded = self.error is None and self.status_code is not None and 200 <= self.status_code < 300
        excerpt = None
        if self.body:
            excerpt = _decode(bytes(self.body), self.encoding)[:EXCERPT_CHARS]
        return AttemptResult(
            succeeded=succeeded,
            status_code=self.status_code,
            duration_ms=duration_ms,
            response_excerpt=excerpt,
            error=self.error,
        )


async def _post(runtime: Runtime, url: str, *, content: bytes, headers: Mapping[str, str], progress: _Progress) -> None:
    allow_private = runtime.settings.allow_private_urls
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            target = await _checked_target(current, resolver=runtime.resolver, allow_private=allow_private)
        except Refused as refusal:
            if hop == 0:
                raise
            raise Refused(f"redirect to {_loggable(current)}: {refusal}") from None
        progress.redirecting = False
        async with _stream(
            runtime.http, target, content=content, headers=headers, timeouts=runtime.settings.webhooks.timeout_seconds
        ) as response:
            progress.status_code = response.status_code
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                if hop == MAX_REDIRECTS:
                    progress.error = f"too many redirects (more than {MAX_REDIRECTS})"
                    return
                progress.redirecting = True
                # The same signed POST goes to the new place: a webhook answered by a GET would be lost.
                current = urljoin(str(target.url), location)
                continue
            progress.encoding = response.charset_encoding
            async for chunk in response.aiter_raw():
                progress.body += chunk[: MAX_RESPONSE_BYTES - len(progress.body)]
                if len(progress.body) >= MAX_RESPONSE_BYTES:
                    break
            return


@contextlib.asynccontextmanager
async def pinned_post(
    client: httpx.AsyncClient,
    url: str,
    *,
    resolver: Resolver,
    allow_private: bool,
    content: bytes,
    headers: Mapping[str, str],
    timeouts: httpx.Timeout | float,
) -> AsyncIterator[httpx.Response]:
    """One POST to a URL a user gave, its address checked and pinned as a webhook attempt's; the answer streamed.

    Redirects are not followed: the caller sees the 3xx. Raises Refused when the URL may not be
    called, and httpx's errors as they come; the caller bounds the total time (lookups included).
    """
    target = await _checked_target(url, resolver=resolver, allow_private=allow_private)
    async with _stream(client, target, content=content, headers=headers, timeouts=timeouts) as response:
        yield response


@contextlib.asynccontextmanager
async def pinned_get(
    client: httpx.AsyncClient,
    url: str,
    *,
    resolver: Resolver,
    allow_private: bool,
    headers: Mapping[str, str],
    timeouts: httpx.Timeout | float,
) -> AsyncIterator[httpx.Response]:
    """One GET of a URL a user gave (media to fetch), checked and pinned as `pinned_post` is."""
    target = await _checked_target(url, resolver=resolver, allow_private=allow_private)
    async with _stream(client, target, method="GET", content=b"", headers=headers, timeouts=timeouts) as response:
        yield response


@contextlib.asynccontextmanager
async def _stream(
    client: httpx.AsyncClient,
    target: _Target,
    *,
    method: str = "POST",
    content: bytes,
    headers: Mapping[str, str],
    timeouts: httpx.Timeout | float,
) -> AsyncIterator[httpx.Response]:
    request_headers = {
        **headers,
        "host": target.host_header,
        # Compressed answers could expand far past what we mean to read.
        "accept-encoding": "identity",
    }
    if target.extensions:
        # The pool keys connections by the address we dial, not by the TLS name: a kept-alive
        # connection verified for one name would carry the next request to another name at the same
        # address (shared hosting, a CDN) without its certificate ever being checked.
        request_headers["connection"] = "close"
    async with client.stream(
        method,
        target.pinned,
        content=content,
        headers=request_headers,
        extensions=target.extensions,
        follow_redirects=False,
        timeout=timeouts,
    ) as response:
        yield response


async def _checked_target(url: str, *, resolver: Resolver, allow_private: bool) -> _Target:
    """The URL and the address to connect to, or Refused when it may not be called."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise Refused(f"'{_loggable(url)}' is not a valid URL") from None
    literal = _is_ip_literal(parsed.host)
    try:
        # Scheme and credentials always; names such as `localhost` or `*.internal` too (no lookup here).
        # An IP literal's address is judged below, with the same words as a resolved one.
        check_public_url(url, allow_private=allow_private or literal)
    except UnsafeUrl as refusal:
        raise Refused(refusal.message) from None
    addresses = [parsed.host] if literal else await _lookup(resolver, parsed.raw_host.decode("ascii"))
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                # Any private answer refuses the name: we must not pick among answers an attacker controls.
                raise Refused(f"{address} is {_kind(address)} address")
    return _Target(url=parsed, address=addresses[0])


async def _lookup(resolver: Resolver, host: str) -> list[str]:
    global _lookup_pool
    if _lookup_pool is None:
        _lookup_pool = ThreadPoolExecutor(max_workers=_LOOKUP_THREADS, thread_name_prefix="webhook-lookup")
    loop = asyncio.get_running_loop()
    try:
        addresses = await loop.run_in_executor(_lookup_pool, lambda: list(resolver(host)))
    except (OSError, UnicodeError, ValueError):
        raise Refused(f"the host {host} could not be resolved") from None
    valid = [address for address in addresses if _is_ip_literal(address)]
    if not valid:
        raise Refused(f"the host {host} could not be resolved")
    return valid


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _kind(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"an IPv4-mapped {_kind(str(ip.ipv4_mapped)).removeprefix('a ').removeprefix('an ')}"
    embedded = embedded_ipv4(ip)
    if embedded is not None and not is_public_address(str(embedded)):
        return f"an IPv4-embedding {_kind(str(embedded)).removeprefix('a ').removeprefix('an ')}"
    if ip == ipaddress.ip_address("169.254.169.254"):
        return "a cloud metadata"
    if ip.is_loopback:
        return "a loopback"
    if ip.is_link_local:
        return "a link-local"
    if ip.is_unspecified:
        return "an unspecified"
    if ip.is_multicast:
        return "a multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT)"
    if ip.is_private:
        return "a private"
    return "a non-public"


def _describe(error: httpx.HTTPError) -> str:
    """A short reason in our words: httpx's own text could quote the request."""
    causes = _causes(error)
    if isinstance(error, httpx.ConnectError):
        if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
            return "connection refused"
        if any(isinstance(cause, ssl.SSLError) for cause in causes):
            return "TLS handshake failed (is the certificate valid for this name?)"
        if any(getattr(cause, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH) for cause in causes):
            return "network unreachable"
        text = str(error).lower()
        if "refused" in text:
            return "connection refused"
        return "could not connect"
    if isinstance(error, httpx.RemoteProtocolError):
        return "the server closed the connection without a valid HTTP answer"
    if isinstance(error, httpx.ReadError | httpx.WriteError):
        return "the connection broke during the request"
    if isinstance(error, httpx.UnsupportedProtocol):
        return "only http and https URLs can be called"
    return f"request failed ({type(error).__name__})"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps (httpx -> httpcore -> the OS error), a few levels deep."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _decode(data: bytes, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python doesn't know
        return data.decode("utf-8", errors="replace")


def _loggable(url: str) -> str:
    """The URL without its query: query strings often carry tokens."""
    return url.split("?", 1)[0][:200]

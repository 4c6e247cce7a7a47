"""Checks for URLs that users give us, so the platform can't be pointed at its own network."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from kaanha.errors import InvalidRequest


class UnsafeUrl(InvalidRequest):
    code = "unsafe_url"


Resolver = Callable[[str], Iterable[str]]


def system_resolver(host: str) -> list[str]:
    """The host's addresses as the operating system resolves them (blocking: call it in a thread)."""
    import socket

    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})

_BLOCKED_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
# Cloud metadata services answer on link-local addresses, but some also have names.
_BLOCKED_HOSTS = {"localhost", "metadata", "metadata.google.internal", "instance-data"}


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local, etc."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_public_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> str:
    """Refuse URLs that are not http(s) or that point at private, loopback or link-local hosts.

    An IP literal is checked at once. A host name is checked by name here, and after DNS
    resolution when a `resolver` is given (the caller that actually connects passes one, so that a
    name resolving to 127.0.0.1 is caught too). `allow_private` lifts the address rules only.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"'{url}' is not an http or https URL")
    if parts.username or parts.password:
        raise UnsafeUrl("URLs with credentials in them are not accepted")
    if allow_private:
        return url
    host = parts.hostname.rstrip(".").lower()
    if host in _BLOCKED_HOSTS or host.endswith(_BLOCKED_HOST_SUFFIXES):
        raise UnsafeUrl(f"'{url}' points at a private host; use a public URL")
    addresses: Iterable[str]
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        if resolver is None:
            return url
        try:
            addresses = list(resolver(host))
        except OSError:
            raise UnsafeUrl(f"the host of '{url}' cannot be resolved") from None
    for address in addresses:
        if not is_public_address(address):
            raise UnsafeUrl(f"'{url}' points at a private or loopback address; use a public URL")
    return url

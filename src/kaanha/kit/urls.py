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

    # In getaddrinfo's order (RFC 6724: families this host can reach first), duplicates dropped: the caller
    # connects to the first, so sorting would put an IPv6 address first on a host without IPv6.
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)))


_BLOCKED_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
# Cloud metadata services answer on link-local addresses, but some also have names.
_BLOCKED_HOSTS = {"localhost", "metadata", "metadata.google.internal", "instance-data"}


# IPv6 ranges that carry an IPv4 address in their last 32 bits and reach it (RFC 6052 NAT64), and
# the local-use NAT64 range, whose translation is the operator's own (RFC 8215).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, IPv4-compatible, NAT64, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address) or ip.is_loopback or ip.is_unspecified:  # ::1 and :: are IPv6's own
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip.packed[:12] == bytes(12):  # ::a.b.c.d, the deprecated IPv4-compatible form
        return ipaddress.IPv4Address(ip.packed[12:])
    return None


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; False for private, loopback, link-local, etc.

    An IPv6 address that stands for an IPv4 one is judged by that IPv4 address (`::ffff:127.0.0.1`,
    `::127.0.0.1`, `64:ff9b::7f00:1` and `2002:7f00:1::` are all loopback).
    """
    ip = ipaddress.ip_address(address)
    if ip in _LOCAL_NAT64:
        return False
    ip = embedded_ipv4(ip) or ip
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

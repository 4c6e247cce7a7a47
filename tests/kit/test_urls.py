"""check_public_url: user-supplied URLs may not point the platform at its own network.

Nothing here resolves real DNS or connects anywhere: names are checked by rule, or through a fake resolver.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

import pytest

from kaanha.kit.urls import UnsafeUrl, check_public_url, is_public_address, system_resolver


@pytest.fixture(autouse=True)
def no_real_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a test tried to resolve a real name or open a socket")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def resolving_to(*addresses: str) -> Callable[[str], Iterable[str]]:
    asked: list[str] = []

    def resolver(host: str) -> list[str]:
        asked.append(host)
        return list(addresses)

    resolver.asked = asked  # type: ignore[attr-defined]
    return resolver


def refused(url: str, **kwargs: object) -> UnsafeUrl:
    with pytest.raises(UnsafeUrl) as caught:
        check_public_url(url, **{"allow_private": False, **kwargs})  # type: ignore[arg-type]
    error = caught.value
    assert error.code == "unsafe_url"
    assert error.status_code == 400
    return error


@pytest.mark.parametrize(
    "url",
    [
        # private IPv4
        "http://10.0.0.5/hook",
        "https://172.16.3.4/",
        "http://192.168.1.1:8080/admin",
        # loopback
        "http://127.0.0.1/",
        "http://127.8.9.10:9000/",
        # link-local, where cloud metadata services live
        "http://169.254.169.254/latest/meta-data/",
        # unspecified, shared (CGNAT), broadcast, multicast, reserved
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        # IPv6 loopback, unique-local (ULA), link-local, unspecified
        "http://[::1]/",
        "http://[::1]:8000/x",
        "http://[fd00::1]/",
        "http://[fc12:3456::7]/",
        "http://[fe80::1]/",
        "http://[::]/",
        # IPv4-mapped IPv6 addresses of private and loopback hosts
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.5]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:7f00:1]/",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url):
    error = refused(url)

    assert "private" in error.message or "loopback" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST:8000/",
        "http://localhost./",
        "http://api.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://db.internal/",
        "https://vault.corp.internal:8200/",
        "http://printer.local/",
        "http://metadata/",
    ],
)
def test_local_and_internal_names_are_refused_without_resolving_them(url):
    resolver = resolving_to("93.184.216.34")

    refused(url, resolver=resolver)

    assert resolver.asked == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/",
        "http://8.8.8.8:8080/path?q=1",
        "https://[2606:4700:4700::1111]/",
        "https://[::ffff:93.184.216.34]/",
    ],
)
def test_public_addresses_are_accepted(url):
    assert check_public_url(url, allow_private=False) == url


def test_a_name_resolving_to_a_private_address_is_refused():
    resolver = resolving_to("10.0.0.5")

    refused("https://hooks.example.com/in", resolver=resolver)

    assert resolver.asked == ["hooks.example.com"]  # type: ignore[attr-defined]


def test_a_name_resolving_to_a_public_address_is_accepted():
    resolver = resolving_to("93.184.216.34")

    assert check_public_url("https://example.com/hook", allow_private=False, resolver=resolver) == (
        "https://example.com/hook"
    )
    assert resolver.asked == ["example.com"]  # type: ignore[attr-defined]


def test_a_name_is_refused_if_any_of_its_addresses_is_private():
    refused("https://example.com/", resolver=resolving_to("93.184.216.34", "127.0.0.1"))
    refused("https://example.com/", resolver=resolving_to("2606:4700::1", "::1"))
    refused("https://example.com/", resolver=resolving_to("93.184.216.34", "::ffff:192.168.0.1"))


def test_numeric_host_spellings_are_caught_by_the_resolver():
    # "2130706433" and "0x7f.1" are 127.0.0.1 to most resolvers; the resolver's answer decides.
    refused("http://2130706433/", resolver=resolving_to("127.0.0.1"))
    refused("http://0x7f.1/", resolver=resolving_to("127.0.0.1"))


def test_a_name_that_cannot_be_resolved_is_refused():
    def failing(host: str) -> list[str]:
        raise socket.gaierror(f"no such host {host}")

    error = refused("https://nowhere.example/", resolver=failing)

    assert "resolved" in error.message


def test_without_a_resolver_a_public_looking_name_is_accepted_by_name():
    assert check_public_url("https://graph.facebook.com/v24.0/", allow_private=False) == (
        "https://graph.facebook.com/v24.0/"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/",
        "http://127.0.0.1:8000/",
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://localhost:8000/",
        "https://db.internal/",
    ],
)
def test_allow_private_lifts_the_address_rules(url):
    assert check_public_url(url, allow_private=True) == url
    assert check_public_url("https://example.com/", allow_private=True, resolver=resolving_to("10.0.0.5"))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://93.184.216.34/file",
        "gopher://93.184.216.34:70/",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "ws://93.184.216.34/",
        "//93.184.216.34/no-scheme",
        "93.184.216.34",
        "http:///no-host",
        "",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_non_http_urls_are_refused_even_when_private_urls_are_allowed(url, allow_private):
    error = refused(url, allow_private=allow_private)

    assert "http" in error.message


def test_urls_with_credentials_are_refused():
    refused("https://user:password@93.184.216.34/")
    refused("https://user@93.184.216.34/", allow_private=True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("10.1.2.3", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("ff02::1", False),
        # IPv6 forms that stand for an IPv4 address are judged by it.
        ("::127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:7f00:1::", False),
        ("64:ff9b:1::5db8:d822", False),
        ("64:ff9b::5db8:d822", True),
        ("2002:5db8:d822::1", True),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


def test_the_system_resolver_keeps_the_order_of_getaddrinfo(monkeypatch):
    # getaddrinfo puts first what this host can reach (RFC 6724); the caller connects to the first answer.
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::1", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)

    assert system_resolver("example.com") == ["93.184.216.34", "2606:2800:220:1::1"]

"""The safe POST: address checks after DNS and on every redirect, proven without connecting anywhere.

Names resolve through a table, requests go to a recording httpx transport that opens no socket,
and the only real connections (timeouts, refused connections) are to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from kaanha.runtime import Runtime
from kaanha.webhooks.transport import EXCERPT_CHARS, MAX_RESPONSE_BYTES, post
from tests.webhooks.delivery_support import (
    Recorder,
    TableResolver,
    closed_port_url,
    loopback_only,
    never_answering_server,
)

PUBLIC = "93.184.215.14"  # looks public; the recorder stands in for it, nothing is sent there
BODY = b'{"id":"evt_1"}'
HEADERS = {"webhook-id": "evt_1", "content-type": "application/json"}

PRIVATE_ANSWERS = {
    "private.example.com": ["10.0.0.5"],
    "loopback.example.com": ["127.0.0.1"],
    "loopback6.example.com": ["::1"],
    "metadata.example.com": ["169.254.169.254"],
    "ula.example.com": ["fd00::1"],
    "cgnat.example.com": ["100.64.0.1"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "mixed.example.com": [PUBLIC, "192.168.1.10"],
    "compat.example.com": ["::127.0.0.1"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.example.com": ["2002:a00:1::1"],
}


@pytest.fixture
def recorder(runtime: Runtime) -> Iterator[Recorder]:
    """Every request of the test lands here; the resolver knows only the table above (and hooks.example.com)."""
    recording = Recorder()
    original_http, original_resolver = runtime.http, runtime.resolver
    runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(recording))
    runtime.resolver = TableResolver({**PRIVATE_ANSWERS, "hooks.example.com": [PUBLIC]})
    runtime.settings.allow_private_urls = False
    yield recording
    runtime.http, runtime.resolver = original_http, original_resolver


async def send(runtime: Runtime, url: str):  # type: ignore[no-untyped-def]
    return await post(runtime, url, content=BODY, headers=HEADERS)


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("private.example.com", "10.0.0.5", "a private"),
        ("loopback.example.com", "127.0.0.1", "a loopback"),
        ("loopback6.example.com", "::1", "a loopback"),
        ("metadata.example.com", "169.254.169.254", "a cloud metadata"),
        ("ula.example.com", "fd00::1", "a private"),
        ("cgnat.example.com", "100.64.0.1", "a shared (carrier-grade NAT)"),
        ("mapped.example.com", "::ffff:10.0.0.1", "an IPv4-mapped private"),
        ("mixed.example.com", "192.168.1.10", "a private"),
        ("compat.example.com", "::127.0.0.1", "an IPv4-embedding loopback"),
        ("nat64.example.com", "64:ff9b::a9fe:a9fe", "an IPv4-embedding cloud metadata"),
        ("sixtofour.example.com", "2002:a00:1::1", "an IPv4-embedding private"),
    ],
)
async def test_a_name_resolving_to_a_non_public_address_is_refused(runtime, recorder, host, address, kind):
    result = await send(runtime, f"https://{host}/hooks")

    assert not result.succeeded
    assert result.status_code is None
    assert result.error == f"refused: {address} is {kind} address"
    assert recorder.requests == []
    assert runtime.resolver.asked == [host]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hooks",
        "http://127.0.0.1:8000/hooks",
        "http://127.8.9.10/",
        "http://[::1]/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://[fe80::1]/",
    ],
)
async def test_an_ip_literal_that_is_not_public_is_refused_without_a_lookup(runtime, recorder, url):
    result = await send(runtime, url)

    assert not result.succeeded
    assert (result.error or "").startswith("refused: ")
    assert recorder.requests == []
    assert runtime.resolver.asked == []


@pytest.mark.parametrize(
    "url", ["http://localhost:8000/", "https://metadata.google.internal/", "http://printer.local/"]
)
async def test_private_names_are_refused_by_name(runtime, recorder, url):
    result = await send(runtime, url)

    assert (result.error or "").startswith("refused: ")
    assert recorder.requests == []
    assert runtime.resolver.asked == []


async def test_a_name_that_does_not_resolve_is_refused(runtime, recorder):
    result = await send(runtime, "https://nowhere.example.com/")

    assert result.error == "refused: the host nowhere.example.com could not be resolved"
    assert recorder.requests == []


async def test_a_public_target_is_called_at_the_address_that_was_checked(runtime, recorder):
    result = await send(runtime, "https://hooks.example.com:8443/in?token=abc")

    assert result.succeeded
    assert result.status_code == 200
    assert result.response_excerpt == "ok"
    assert result.error is None
    [request] = recorder.requests
    # Pinned: the connection goes to the checked address, the name travels in Host and in TLS's SNI.
    assert request.url.host == PUBLIC
    assert request.url.port == 8443
    assert request.url.path == "/in"
    assert request.url.query == b"token=abc"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.method == "POST"
    assert request.content == BODY
    assert request.headers["webhook-id"] == "evt_1"


async def test_plain_http_sends_no_server_name(runtime, recorder):
    await send(runtime, "http://hooks.example.com/in")

    [request] = recorder.requests
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "hooks.example.com"
    assert "sni_hostname" not in request.extensions


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://private.example.com/steal", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://[::1]:8000/admin", "::1 is a loopback address"),
        ("http://localhost/admin", "'http://localhost/admin' points at a private host; use a public URL"),
        ("file:///etc/passwd", "'file:///etc/passwd' is not an http or https URL"),
    ],
)
async def test_a_redirect_to_a_private_place_is_refused_before_it_is_followed(runtime, recorder, location, reason):
    recorder.answer = lambda _request: httpx.Response(302, headers={"location": location})

    result = await send(runtime, "https://hooks.example.com/in")

    assert not result.succeeded
    assert result.status_code == 302
    assert result.error == f"refused: redirect to {location}: {reason}"
    assert len(recorder.requests) == 1  # the first hop only


async def test_redirects_are_followed_with_the_same_signed_post(runtime, recorder):
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(301, headers={"location": "/new"})
        if request.url.path == "/new":
            return httpx.Response(307, headers={"location": "https://hooks.example.com/final"})
        return httpx.Response(202, text="accepted")

    recorder.answer = answer
    result = await send(runtime, "http://hooks.example.com/old")

    assert result.succeeded
    assert result.status_code == 202
    assert [str(request.url) for request in recorder.requests] == [
        f"http://{PUBLIC}/old",
        f"http://{PUBLIC}/new",
        f"https://{PUBLIC}/final",
    ]
    assert all(request.method == "POST" and request.content == BODY for request in recorder.requests)
    assert all(request.headers["host"] == "hooks.example.com" for request in recorder.requests)
    assert recorder.requests[-1].extensions["sni_hostname"] == "hooks.example.com"


async def test_more_than_three_redirects_fail(runtime, recorder):
    recorder.answer = lambda request: httpx.Response(302, headers={"location": f"{request.url.path}x"})

    result = await send(runtime, "https://hooks.example.com/a")

    assert not result.succeeded
    assert result.status_code == 302
    assert result.error == "too many redirects (more than 3)"
    assert len(recorder.requests) == 4


async def test_a_non_2xx_answer_fails_with_its_status_and_excerpt(runtime, recorder):
    recorder.answer = lambda _request: httpx.Response(500, text="database down")

    result = await send(runtime, "https://hooks.example.com/")

    assert not result.succeeded
    assert result.status_code == 500
    assert result.response_excerpt == "database down"
    assert result.duration_ms >= 0


async def test_only_the_start_of_a_long_answer_is_read(runtime, recorder):
    chunks_sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        while chunks_sent < 10_000:
            chunks_sent += 1
            yield "é".encode() * 4096

    recorder.answer = lambda _request: httpx.Response(200, content=endless())
    result = await send(runtime, "https://hooks.example.com/")

    assert result.succeeded
    assert result.response_excerpt == "é" * EXCERPT_CHARS
    assert chunks_sent * 8192 <= MAX_RESPONSE_BYTES + 8192  # stopped reading after 64 KiB


async def test_an_undecodable_answer_is_kept_leniently(runtime, recorder):
    recorder.answer = lambda _request: httpx.Response(400, content=b"bad \xff\xfe input")

    result = await send(runtime, "https://hooks.example.com/")

    assert result.response_excerpt == "bad \ufffd\ufffd input"


async def test_transport_failures_become_results(runtime, recorder):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    recorder.answer = refuse
    assert (await send(runtime, "https://hooks.example.com/")).error == "connection refused"

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    recorder.answer = broken
    assert (await send(runtime, "https://hooks.example.com/")).error == (
        "the server closed the connection without a valid HTTP answer"
    )

    def crash(_request: httpx.Request) -> httpx.Response:
        raise RuntimeError("something odd")

    recorder.answer = crash
    result = await send(runtime, "https://hooks.example.com/")
    assert not result.succeeded
    assert result.error == "unexpected error (RuntimeError)"


async def test_allow_private_urls_lifts_the_address_rules(runtime, recorder):
    runtime.settings.allow_private_urls = True

    result = await send(runtime, "http://private.example.com:8080/hooks")

    assert result.succeeded
    [request] = recorder.requests
    assert request.url.host == "10.0.0.5"
    assert request.headers["host"] == "private.example.com:8080"


async def test_only_http_and_https_are_ever_called(runtime, recorder):
    runtime.settings.allow_private_urls = True

    result = await send(runtime, "ftp://hooks.example.com/")

    assert result.error == "refused: 'ftp://hooks.example.com/' is not an http or https URL"
    assert recorder.requests == []


async def test_a_server_that_never_answers_times_out(runtime):
    runtime.settings.allow_private_urls = True
    runtime.settings.webhooks.timeout_seconds = 0.3
    with never_answering_server() as url:
        async with loopback_only(runtime):
            result = await send(runtime, url)

    assert not result.succeeded
    assert result.status_code is None
    assert result.error == "timed out after 0.3 s"


async def test_a_closed_port_is_a_refused_connection(runtime):
    runtime.settings.allow_private_urls = True
    async with loopback_only(runtime):
        result = await send(runtime, closed_port_url())

    assert not result.succeeded
    assert result.error == "connection refused"


def _tls_contexts(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context whose certificate is valid for `name` only, and a client context trusting its CA."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def subject(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    start = datetime.now(UTC) - timedelta(days=1)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject("test CA"))
        .issuer_name(subject("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject(name))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_a_kept_alive_connection_verified_for_one_name_never_carries_another_names_delivery(runtime):
    # Two names at one address (shared hosting, a CDN), a certificate for one of them: the other's
    # delivery must be verified for its own name, not ride the connection the first one opened.
    server_context, client_context = _tls_contexts("good.example.com")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    original_http, original_resolver = runtime.http, runtime.resolver
    runtime.http = httpx.AsyncClient(verify=client_context)
    runtime.resolver = TableResolver({"good.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]})
    runtime.settings.allow_private_urls = True
    try:
        first = await send(runtime, f"https://good.example.com:{port}/hooks")
        second = await send(runtime, f"https://other.example.com:{port}/hooks")
    finally:
        await runtime.http.aclose()
        runtime.http, runtime.resolver = original_http, original_resolver
        server.close()
        await server.wait_closed()

    assert first.succeeded
    assert not second.succeeded
    assert second.error == "TLS handshake failed (is the certificate valid for this name?)"

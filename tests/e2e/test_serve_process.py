"""`kaanha serve` as a real process on a loopback port, set up with the CLI and driven over HTTP.

The database is a fresh SQLite file in a temporary folder, or a fresh PostgreSQL database (dropped
afterwards) when KAANHA_TEST_DATABASE_URL is set. The server runs its in-process workers, so a reply
sent on the sandbox connection moves to `read` on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kaanha.testing.databases import scratch_postgres_database

API = "/api/whatsapp-api"
KAANHA = str(Path(sys.executable).parent / "kaanha")
ORG = "E2E Shop"
CUSTOMER = "+919876543210"
# The scopes API.md lists; a key created without --scopes has all of them.
API_MD_SCOPES = (
    "contacts:read contacts:write conversations:read conversations:write messages:read messages:send "
    "media:read media:write templates:read templates:write broadcasts:read broadcasts:write "
    "webhooks:read webhooks:write analytics:read ai_agents:read ai_agents:write quick_replies:read "
    "quick_replies:write payment_links:read payment_links:write"
)
ALL_SCOPES = set(API_MD_SCOPES.split())


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    env: dict[str, str]
    log: Path
    organization: dict[str, Any]
    api_key: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key['key']}"}

    def client(self, *, authenticated: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers if authenticated else None, timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def kaanha(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KAANHA, *args], env=env, capture_output=True, text=True, timeout=120)


def kaanha_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = kaanha(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def png_bytes() -> bytes:
    """A valid 2x2 RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x80\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database when KAANHA_TEST_DATABASE_URL is set."""
    requested = os.environ.get("KAANHA_TEST_DATABASE_URL")
    if not requested:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('e2e-db') / 'kaanha.db'}"
        return
    with scratch_postgres_database(requested, prefix="kaanha_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    with serve_process(tmp_path_factory.mktemp("e2e"), database_url) as server:
        yield server


@contextlib.contextmanager
def serve_process(folder: Path, database_url: str, **settings: str) -> Iterator[Server]:
    """`kaanha serve` on a free loopback port, with an organization and a key made by the CLI."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAANHA_")}
    env.update(
        KAANHA_DATA_DIR=str(folder / "data"),
        KAANHA_DATABASE_URL=database_url,
        # Polling below makes more requests than a person would; the limiter still runs.
        KAANHA_RATE_LIMITS__API="10000/minute",
        **settings,
    )
    organization = kaanha_json(env, "orgs", "create", ORG)
    api_key = kaanha_json(env, "keys", "create", "--org", ORG, "--name", "t")
    port = free_port()
    log = folder / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [KAANHA, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", env, log, organization, api_key)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + 60
    last = "no answer yet"
    with server.client() as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"kaanha serve exited with {server.process.returncode}:\n{server.output()}")
            try:
                response = client.get(f"{API}/status")
            except httpx.TransportError as error:
                last = repr(error)
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            time.sleep(0.1)
    pytest.fail(f"kaanha serve did not answer /status within 60 s ({last}):\n{server.output()}")


def test_cli_prints_the_organization_and_key_shapes(server: Server) -> None:
    assert set(server.organization) == {"id", "name", "plan"}
    assert server.organization["name"] == ORG
    assert server.organization["plan"] == "starter"
    assert set(server.api_key) == {"id", "name", "key", "scopes", "expiresAt"}
    assert server.api_key["name"] == "t"
    assert re.fullmatch(r"kh_[a-z0-9]{10}_[A-Za-z0-9]{40}", server.api_key["key"])
    assert set(server.api_key["scopes"]) >= ALL_SCOPES
    assert server.api_key["expiresAt"] is None


def test_status(server: Server) -> None:
    with server.client() as client:
        response = client.get(f"{API}/status")
    assert response.status_code == 200, response.text
    status = response.json()
    assert status["connected"] is True
    assert status["connectionType"] == "sandbox"
    assert status["businessName"] == ORG
    assert status["phoneNumber"]
    assert int(response.headers["RateLimit-Limit"]) == 10000


def test_create_contact(server: Server) -> None:
    with server.client() as client:
        created = client.post(f"{API}/contacts", json={"phone": "098123 45678", "name": "Ravi", "tags": ["vip"]})
        assert created.status_code == 201, created.text
        contact = created.json()
        assert contact["phone"] == "+919812345678"
        assert contact["tags"] == ["vip"]
        found = client.get(f"{API}/contacts", params={"search": "ravi"})
        again = client.get(f"{API}/contacts/{contact['id']}")
    assert found.status_code == 200, found.text
    assert [row["id"] for row in found.json()["data"]] == [contact["id"]]
    assert again.json() == contact


def test_inbound_message_then_reply_is_read(server: Server) -> None:
    done = kaanha(server.env, "sandbox", "receive", "--org", ORG, "--from", CUSTOMER, "--text", "hi")
    assert done.returncode == 0, done.stderr
    with server.client() as client:
        chats = client.get(f"{API}/chats")
        assert chats.status_code == 200, chats.text
        conversations = [chat for chat in chats.json()["data"] if chat["contact"]["phone"] == CUSTOMER]
        assert len(conversations) == 1, chats.json()
        assert conversations[0]["status"] == "OPEN"
        assert conversations[0]["unreadCount"] >= 1

        sent = client.post(f"{API}/send", json={"to": CUSTOMER, "type": "text", "text": "Hello from e2e"})
        assert sent.status_code == 201, sent.text
        message = sent.json()
        assert message["direction"] == "outbound"
        assert message["conversationId"] == conversations[0]["id"]
        assert message["content"]["text"] == "Hello from e2e"

        deadline = time.monotonic() + 20
        seen = [message["status"]]
        while message["status"] != "read":
            assert message["status"] in {"queued", "sent", "delivered"}, message
            assert time.monotonic() < deadline, f"still {message['status']} after 20 s: {seen}\n{server.output()}"
            time.sleep(0.25)
            response = client.get(f"{API}/messages/{message['id']}")
            assert response.status_code == 200, response.text
            message = response.json()
            seen.append(message["status"])
    assert message["whatsappMessageId"]
    assert message["sentAt"]
    assert message["deliveredAt"]
    assert message["readAt"]
    assert message["error"] is None


def test_media_upload_and_download(server: Server) -> None:
    picture = png_bytes()
    with server.client() as client:
        uploaded = client.post(f"{API}/media", files={"file": ("dot.png", picture, "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        media = uploaded.json()
        assert media["mimeType"] == "image/png"
        assert media["size"] == len(picture)
        assert media["filename"] == "dot.png"
        downloaded = client.get(f"/api/media/{media['mediaId']}")
        partial = client.get(f"/api/media/{media['mediaId']}", headers={"Range": "bytes=0-7"})
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == picture
    assert downloaded.headers["content-type"] == "image/png"
    assert downloaded.headers["etag"]
    assert partial.status_code == 206
    assert partial.content == picture[:8]


def test_requests_without_a_key_answer_401(server: Server) -> None:
    with server.client(authenticated=False) as client:
        status = client.get(f"{API}/status")
        contacts = client.get(f"{API}/contacts")
        media = client.get("/api/media/med_missing")
    for response in (status, contacts, media):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "unauthorized"
        assert response.json()["error"]


def test_sigterm_stops_the_server_cleanly(server: Server) -> None:
    """Last in this module: on SIGTERM the server finishes its lifespan (workers, database) and exits."""
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kaanha serve still running 20 s after SIGTERM:\n{server.output()}")
    output = server.output()
    # Uvicorn shuts down gracefully, then re-raises the signal it caught so that the process ends "by
    # SIGTERM" as supervisors expect: -15 here is a clean stop as much as 0 is.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Finished server process" in output, output
    assert "Traceback" not in output, output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}{API}/status", headers=server.headers, timeout=2)

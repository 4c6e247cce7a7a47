"""The MCP server through the SDK's client: stdio against `kaanha mcp`, SSE and streamable HTTP against `kaanha serve`.

One `kaanha serve` process (and its database) is shared by the module; `kaanha mcp` processes are started
per session against the same database. Only loopback traffic: media comes from a local HTTP server.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.e2e.test_serve_process import KAANHA, Server, database_url, kaanha, kaanha_json, png_bytes, serve_process

__all__ = ["database_url"]  # the module-scoped database fixture, shared with the e2e tests

TOOLS = {
    "list_contacts",
    "get_contact",
    "create_contact",
    "list_conversations",
    "get_conversation",
    "send_message",
    "list_templates",
    "send_broadcast",
    "get_analytics",
    "list_ai_agents",
    "list_quick_replies",
    "create_payment_link",
    "get_message",
    "update_conversation",
    "list_messages",
    "upload_media",
}
READ_ONLY = {
    "list_contacts",
    "get_contact",
    "list_conversations",
    "get_conversation",
    "list_templates",
    "get_analytics",
    "list_ai_agents",
    "list_quick_replies",
    "get_message",
    "list_messages",
}
OPEN_WORLD = {"send_message", "send_broadcast", "create_payment_link", "upload_media"}
CUSTOMER = "+919876543211"
TRANSPORTS = ("stdio", "sse", "http")


@dataclass
class Setup:
    server: Server
    other_key: str
    narrow_key: str
    media_url: str

    @property
    def key(self) -> str:
        return str(self.server.api_key["key"])


@pytest.fixture(scope="module")
def media_url() -> Iterator[str]:
    body = png_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/logo.png"
    httpd.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, database_url: str, media_url: str) -> Iterator[Setup]:
    # The HTTP server may fetch from loopback (the media server above); `kaanha mcp` processes may not.
    with serve_process(tmp_path_factory.mktemp("mcp"), database_url, KAANHA_ALLOW_PRIVATE_URLS="true") as server:
        kaanha_json(server.env, "orgs", "create", "Other Shop")
        other = kaanha_json(server.env, "keys", "create", "--org", "Other Shop", "--name", "other")
        narrow = kaanha_json(
            server.env, "keys", "create", "--org", server.organization["id"], "--name", "n", "--scopes", "contacts:read"
        )
        done = kaanha(
            server.env, "sandbox", "receive", "--org", server.organization["id"], "--from", CUSTOMER, "--text", "Hi"
        )
        assert done.returncode == 0, done.stderr
        yield Setup(server, other["key"], narrow["key"], media_url)


@contextlib.asynccontextmanager
async def connect(setup: Setup, transport: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    key = key or setup.key
    streams: contextlib.AbstractAsyncContextManager[Any]
    async with contextlib.AsyncExitStack() as stack:
        if transport == "stdio":
            env = {**setup.server.env, "KAANHA_API_KEY": key}
            env.pop("KAANHA_ALLOW_PRIVATE_URLS", None)
            params = StdioServerParameters(command=KAANHA, args=["mcp"], env=env)
            streams = stdio_client(params, errlog=(setup.server.log.parent / "mcp-stdio.log").open("a"))
        elif transport == "sse":
            streams = sse_client(f"{setup.server.base_url}/api/mcp/sse", headers={"Authorization": f"Bearer {key}"})
        else:
            import httpx2

            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
            )
            streams = streamable_http_client(f"{setup.server.base_url}/api/mcp", http_client=client)
        read, write, *_ = await stack.enter_async_context(streams)
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def call(session: ClientSession, name: str, /, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refused(session: ClientSession, name: str, /, **arguments: Any) -> str:
    result: CallToolResult = await session.call_tool(name, arguments)
    assert result.is_error, result.structured_content
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


def error_of(text: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(text[text.index("{") :])
    return body


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tools_are_listed_with_schemas_and_annotations(setup: Setup, transport: str) -> None:
    async with connect(setup, transport) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert len(tool.description or "") > 60, name
        assert tool.output_schema is not None, name
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
        if name in OPEN_WORLD:
            assert tool.annotations.open_world_hint is True, name
    send = tools["send_message"]
    assert "24 hours" in (send.description or "")
    properties = send.input_schema["properties"]
    assert {"to", "type", "text", "mediaUrl", "mediaId", "templateName", "quickReply", "interactive"} <= set(properties)
    assert send.input_schema["required"] == ["to"]
    assert "wa" not in properties
    assert "contactId" not in tools["list_contacts"].input_schema["properties"]
    assert set(tools["get_analytics"].input_schema["properties"]) == {"from", "to", "granularity"}
    assert "phone" in tools["create_contact"].input_schema["required"]
    assert "createdAt" in json.dumps(tools["get_contact"].output_schema)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_tool_with_valid_and_invalid_input(setup: Setup, transport: str) -> None:
    number = f"+9198765{TRANSPORTS.index(transport)}0001"
    async with connect(setup, transport) as session:
        contact = await call(session, "create_contact", phone=number[3:], name="Asha", tags=["vip"])
        assert contact["phone"] == number
        assert "duplicate" in error_of(await refused(session, "create_contact", phone=number))["code"]
        assert "bogus" in await refused(session, "create_contact", phone="+919876500002", bogus=1)
        assert (await call(session, "get_contact", contact_id=contact["id"]))["name"] == "Asha"
        assert error_of(await refused(session, "get_contact", contact_id="ctc_missing"))["code"] == "contact_not_found"
        listed = await call(session, "list_contacts", search=number[-8:])
        assert [row["id"] for row in listed["data"]] == [contact["id"]]
        assert "limit" in await refused(session, "list_contacts", limit=1000)

        conversations = await call(session, "list_conversations", status="OPEN")
        conversation = next(row for row in conversations["data"] if row["contact"]["phone"] == CUSTOMER)
        detail = await call(session, "get_conversation", conversation_id=conversation["id"])
        assert any(row["direction"] == "inbound" and row["content"].get("text") == "Hi" for row in detail["messages"])
        assert "status" in await refused(session, "list_conversations", status="CLOSED")
        assert error_of(await refused(session, "get_conversation", conversation_id="cnv_missing"))["code"]

        sent = await call(session, "send_message", to=CUSTOMER, type="text", text="Hello from Claude")
        assert sent["status"] == "queued"
        assert (await call(session, "get_message", message_id=sent["id"]))["content"]["text"] == "Hello from Claude"
        window = error_of(await refused(session, "send_message", to=number, type="text", text="Hi"))
        assert window["code"] == "outside_customer_service_window"
        assert error_of(await refused(session, "get_message", message_id="msg_missing"))["code"]
        page = await call(session, "list_messages", conversationId=conversation["id"])
        assert sent["id"] in [row["id"] for row in page["data"]]

        resolved = await call(session, "update_conversation", conversation_id=conversation["id"], status="RESOLVED")
        assert resolved["status"] == "RESOLVED"
        reopened = await call(session, "update_conversation", conversation_id=conversation["id"], status="OPEN")
        assert reopened["status"] == "OPEN"
        assert await refused(session, "update_conversation", conversation_id=conversation["id"], status="LATER")

        if transport == "stdio":  # `kaanha mcp` here may not fetch from loopback (the media server)
            assert error_of(await refused(session, "upload_media", url=setup.media_url))["code"] == "unsafe_url"
            media = await uploaded_over_rest(setup)
        else:
            media = await call(session, "upload_media", url=setup.media_url)
            assert media["filename"] == "logo.png"
        assert media["mimeType"] == "image/png"
        bad_scheme = error_of(await refused(session, "upload_media", url="ftp://example.com/a.png"))
        assert bad_scheme["code"] == "unsafe_url"
        image = await call(session, "send_message", to=CUSTOMER, type="image", mediaId=media["mediaId"])
        assert image["content"]["mediaId"] == media["mediaId"]

        assert "data" in await call(session, "list_templates", status="APPROVED")
        assert await refused(session, "list_templates", limit=0)
        broadcast = error_of(
            await refused(
                session, "send_broadcast", name="Sale", templateName="missing", language="en_US", audience={"all": True}
            )
        )
        assert broadcast["code"]
        assert await refused(session, "send_broadcast", name="Sale")

        report = await call(session, "get_analytics", granularity="day")
        assert report["granularity"] == "day"
        assert report["messages"]["received"] >= 1
        assert "granularity" in await refused(session, "get_analytics", granularity="year")

        assert (await call(session, "list_ai_agents"))["data"] == []
        assert await refused(session, "list_ai_agents", page=0)
        assert (await call(session, "list_quick_replies"))["data"] == []
        assert await refused(session, "list_quick_replies", search="x" * 101)

        link = error_of(
            await refused(session, "create_payment_link", amount=50000, description="Order 1", contactId=contact["id"])
        )
        assert link["code"]
        assert await refused(session, "create_payment_link", amount=-1, description="Order 1", contactId=contact["id"])


async def uploaded_over_rest(setup: Setup) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=setup.server.base_url, timeout=10) as web:
        response = await web.post(
            "/api/whatsapp-api/media",
            headers={"Authorization": f"Bearer {setup.key}"},
            files={"file": ("logo.png", png_bytes(), "image/png")},
        )
    assert response.status_code == 201, response.text
    media: dict[str, Any] = response.json()
    return media


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_key_sees_only_its_own_organization(setup: Setup, transport: str) -> None:
    async with connect(setup, "http") as mine:
        contact = await call(mine, "create_contact", phone=f"+91987650{TRANSPORTS.index(transport)}100", name="Mine")
    async with connect(setup, transport, setup.other_key) as other:
        assert contact["id"] not in [row["id"] for row in (await call(other, "list_contacts", limit=100))["data"]]
        assert error_of(await refused(other, "get_contact", contact_id=contact["id"]))["code"] == "contact_not_found"
        theirs = await call(other, "create_contact", phone=contact["phone"], name="Theirs")
        assert theirs["id"] != contact["id"]
        assert all(row["contact"]["phone"] != CUSTOMER for row in (await call(other, "list_conversations"))["data"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_key_without_the_scope_is_refused(setup: Setup, transport: str) -> None:
    async with connect(setup, transport, setup.narrow_key) as session:
        assert (await call(session, "list_contacts"))["data"]
        error = error_of(await refused(session, "send_message", to=CUSTOMER, type="text", text="Hi"))
        assert error["code"] == "insufficient_scope"
        assert "'messages:send'" in error["error"]
        assert "'contacts:write'" in await refused(session, "create_contact", phone="+919876500555")


async def test_stdio_refuses_media_from_private_addresses(setup: Setup) -> None:
    async with connect(setup, "stdio") as session:
        error = error_of(await refused(session, "upload_media", url=setup.media_url))
    assert error["code"] == "unsafe_url"


@pytest.mark.parametrize("path", ["/api/mcp", "/api/mcp/", "/api/mcp/sse", "/api/mcp/messages/?session_id=00"])
@pytest.mark.parametrize("key", [None, "kh_aaaaaaaaaa_" + "a" * 40, "nonsense"])
def test_http_answers_401_without_a_valid_key(setup: Setup, path: str, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    method = "GET" if path.endswith("sse") else "POST"
    response = httpx.request(method, setup.server.base_url + path, headers=headers, json={}, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"


def test_http_refuses_a_foreign_host(setup: Setup) -> None:
    response = httpx.post(
        f"{setup.server.base_url}/api/mcp",
        headers={"Authorization": f"Bearer {setup.key}", "Host": "evil.example", "Content-Type": "application/json"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=10,
    )
    assert response.status_code in (400, 403, 421), response.text


@pytest.mark.parametrize("key", [None, "kh_aaaaaaaaaa_" + "a" * 40])
def test_stdio_exits_with_a_clear_error_for_a_bad_key(setup: Setup, key: str | None, tmp_path: Path) -> None:
    env = {name: value for name, value in setup.server.env.items() if name != "KAANHA_API_KEY"}
    if key:
        env["KAANHA_API_KEY"] = key
    import subprocess

    done = subprocess.run([KAANHA, "mcp"], env=env, capture_output=True, text=True, timeout=60, input="")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "KAANHA_API_KEY" in done.stderr if key is None else "Unknown API key" in done.stderr


async def test_an_sse_session_answers_only_the_key_that_opened_it(setup: Setup) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with (
        httpx.AsyncClient(base_url=setup.server.base_url, timeout=10) as client,
        client.stream("GET", "/api/mcp/sse", headers={"Authorization": f"Bearer {setup.key}"}) as stream,
    ):
        lines = stream.aiter_lines()
        endpoint = ""
        async for line in lines:
            if line.startswith("data:"):
                endpoint = line.removeprefix("data:").strip()
                break
        assert "session_id=" in endpoint
        foreign = await client.post(endpoint, json=initialize, headers={"Authorization": f"Bearer {setup.other_key}"})
        assert foreign.status_code == 404, foreign.text
        own = await client.post(endpoint, json=initialize, headers={"Authorization": f"Bearer {setup.key}"})
        assert own.status_code == 202, own.text


async def test_payment_links_and_broadcasts_through_tools(setup: Setup) -> None:
    async with httpx.AsyncClient(base_url=setup.server.base_url, timeout=10) as web:
        settings = await web.put(
            "/api/whatsapp-api/payment-settings",
            headers={"Authorization": f"Bearer {setup.key}"},
            json={"gateway": "upi", "upiId": "asha.stores@okhdfcbank", "payeeName": "Asha Stores"},
        )
        assert settings.status_code == 200, settings.text
    async with connect(setup, "http") as session, httpx.AsyncClient(timeout=10) as web:
        customer = (await call(session, "list_contacts", search=CUSTOMER[-6:]))["data"][0]
        link = await call(
            session, "create_payment_link", amount=50000, description="Order 7", contactId=customer["id"], send=True
        )
        assert (link["status"], link["gateway"], link["amountDisplay"]) == ("created", "upi", "₹500.00")
        assert f"/pay/{link['id']}" in link["url"]
        message = await call(session, "get_message", message_id=link["messageId"])
        assert message["type"] == "interactive"
        page = await web.get(link["url"].replace("http://127.0.0.1:8000", setup.server.base_url))
        assert "upi://pay?pa=asha.stores@okhdfcbank" in page.text

        broadcast = await call(
            session,
            "send_broadcast",
            name="Hello all",
            templateName="hello_world",
            language="en_US",
            audience={"contactIds": [customer["id"]]},
        )
        assert broadcast["status"] in {"running", "completed"}
        assert broadcast["counts"]["total"] in {None, 0, 1}

    async with connect(setup, "http", setup.other_key) as other:
        for name, arguments in [
            ("update_conversation", {"conversation_id": message["conversationId"], "status": "RESOLVED"}),
            ("get_message", {"message_id": message["id"]}),
            ("list_messages", {"conversationId": message["conversationId"]}),
            ("create_payment_link", {"amount": 100, "description": "x", "contactId": customer["id"]}),
        ]:
            error = error_of(await refused(other, name, **arguments))
            assert error["code"].endswith("not_found") or error["code"] == "payment_settings_incomplete", (name, error)

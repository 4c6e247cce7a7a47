"""MCP over HTTP inside `kaanha serve`: SSE at /api/mcp/sse and streamable HTTP at /api/mcp, behind API keys."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kaanha.auth.api_keys import authenticate
from kaanha.auth.principal import Principal
from kaanha.config import Settings
from kaanha.errors import KaanhaError
from kaanha.mcp_server.tools import build_server
from kaanha.runtime import Runtime

MCP_PATH = "/api/mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: the public URL's host, and loopback on any port."""
    public = urlsplit(settings.public_url)
    hosts = [f"{host}:*" for host in LOOPBACK_HOSTS] + list(LOOPBACK_HOSTS)
    origins = [f"http://{host}:*" for host in LOOPBACK_HOSTS] + [f"http://{host}" for host in LOOPBACK_HOSTS]
    if public.hostname:
        hosts += [public.netloc, public.hostname, f"{public.hostname}:*"]
        origins.append(f"{public.scheme}://{public.netloc}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class RequireApiKey:
    """Answers 401 (the REST API's JSON and words) unless the request carries a valid API key.

    Tools authenticate the key again and check its scope on every call; this makes a bad key fail at
    connection time, as HTTP clients expect, rather than on the first tool call.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
            try:
                async with self.runtime.database.sessions() as session:
                    principal = await authenticate(session, authorization)
                    await session.commit()
            except KaanhaError as error:
                body = json.dumps({"error": error.message, "code": error.code}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": error.status_code,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            # The SDK ties an SSE session to the credential that opened it only when `user` says who that
            # is: without it, any valid key could post into another key's session.
            scope = {**scope, "user": _key_user(principal, authorization or "")}
        await self.app(scope, receive, send)


def _key_user(principal: Principal, authorization: str) -> AuthenticatedUser:
    token = AccessToken(
        token=authorization.removeprefix("Bearer ").strip(),
        client_id=principal.api_key_id or principal.organization_id,
        scopes=sorted(principal.scopes),
        subject=principal.organization_id,
    )
    return AuthenticatedUser(token)


class McpHttp:
    """The MCP server's HTTP routes and the lifespan its streamable HTTP sessions run in."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: MCPServer = build_server(runtime)
        security = transport_security(runtime.settings)
        # Mounted at /api/mcp: SSE clients are told to post to /api/mcp/messages/?session_id=...
        self.sse_app = self.server.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security)
        # Stateless: any `kaanha serve` process behind a load balancer can answer any request.
        self.server.streamable_http_app(streamable_http_path="/", stateless_http=True, transport_security=security)
        self.sessions: StreamableHTTPSessionManager = self.server.session_manager

    def routes(self) -> list[BaseRoute]:
        streamable = RequireApiKey(self.sessions.handle_request, self.runtime)
        return [
            # Stateless: no GET stream of server-initiated messages and no session to DELETE (405 for both).
            # JSON-RPC, not REST: docs/api.md describes it. With or without the trailing slash clients add.
            Route(path, endpoint=streamable, methods=["POST"], include_in_schema=False)
            for path in (MCP_PATH, f"{MCP_PATH}/")
        ] + [Mount(MCP_PATH, app=RequireApiKey(self.sse_app, self.runtime))]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

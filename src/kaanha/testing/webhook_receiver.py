"""A webhook receiver to point Kaanha's outgoing webhooks at: it keeps what arrives and checks signatures.

Serve it on loopback with `BackgroundServer(receiver.app)`. Every path answers; the path decides how:
`/hang` answers only after `hang_seconds` (or never, if the server stops first), `/status/503`
answers that status, anything else answers 200 at once. With `secret`, each delivery is verified as
the Standard Webhooks library would and kept with `verified` set accordingly.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None

    @property
    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class WebhookReceiver:
    secret: str | None = None
    hang_seconds: float = 60.0
    received: list[ReceivedWebhook] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    def events(self, event_type: str | None = None, *, path: str | None = None) -> list[dict[str, Any]]:
        """The event bodies received so far (of one type, at one path), in arrival order."""
        with self._lock:
            kept = list(self.received)
        return [
            item.event
            for item in kept
            if (path is None or item.path == path) and (event_type is None or item.event.get("type") == event_type)
        ]

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        verified = None
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        path = "/" + request.path_params["path"]
        with self._lock:
            self.received.append(ReceivedWebhook(path, headers, body, verified))
        if path.startswith("/hang"):
            await asyncio.sleep(self.hang_seconds)  # the server's shutdown cancels it
            return PlainTextResponse("too late", status_code=200)
        if path.startswith("/status/"):
            return PlainTextResponse(f"answered {path[8:]}", status_code=int(path[8:11]))
        return PlainTextResponse("ok")

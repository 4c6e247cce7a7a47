"""The yardstick: a bare Starlette app answering one constant JSON object on every path we measure.

Served by uvicorn exactly as `kaanha serve` is (uvloop, httptools, one process, no access log), so
the ratio Kaanha rps / bare rps shows what Kaanha's own work costs on top of the server and framework.
It also takes the fake Graph API's status webhooks (reading the body, answering 200) when the fake's
own ceiling is measured without Kaanha.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CONSTANT = {"connected": True, "phoneNumber": "+1 201-555-0100", "connectionType": "sandbox", "businessName": "Bench"}


async def constant(_request: Request) -> JSONResponse:
    return JSONResponse(CONSTANT)


async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"received": True})


app = Starlette(
    routes=[
        Route("/api/whatsapp-api/status", constant),
        Route("/api/whatsapp-api/contacts", constant),
        Route("/api/webhooks/whatsapp", webhook, methods=["POST"]),
    ]
)

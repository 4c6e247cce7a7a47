"""Meta's webhook callback, `/api/webhooks/whatsapp`: no API key, Meta's own handshake and signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from kaanha.http.dependencies import RuntimeDep, SessionDep
from kaanha.http.responses import JsonResponse
from kaanha.whatsapp.cloud_api.webhooks import receive_webhook, verify_subscription

router = APIRouter(prefix="/api/webhooks", tags=["Meta webhooks"])


@router.get("/whatsapp", summary="Meta's webhook verification handshake", response_class=PlainTextResponse)
async def verify(
    session: SessionDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=256)] = "",
) -> PlainTextResponse:
    return PlainTextResponse(await verify_subscription(session, mode=mode, token=token, challenge=challenge))


@router.post("/whatsapp", summary="Meta's webhook notifications (signed with the app secret)")
async def notify(request: Request, session: SessionDep, runtime: RuntimeDep) -> JsonResponse:
    body = await request.body()
    await receive_webhook(session, runtime, body=body, signature=request.headers.get("x-hub-signature-256"))
    return JsonResponse({"received": True})

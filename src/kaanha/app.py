"""create_app(settings): the FastAPI application with its routers, middleware, error handlers and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from kaanha import __version__
from kaanha.ai_agents.endpoints import router as ai_agents_router
from kaanha.analytics.endpoints import router as analytics_router
from kaanha.auth.endpoints import router as api_keys_router
from kaanha.broadcasts.endpoints import router as broadcasts_router
from kaanha.config import Settings
from kaanha.consent.endpoints import router as consent_router
from kaanha.contacts.endpoints import router as contacts_router
from kaanha.conversations.endpoints import router as conversations_router
from kaanha.events.endpoints import router as events_router
from kaanha.http.error_handlers import install_error_handlers
from kaanha.http.middleware import ApiRateLimitMiddleware, BodySizeLimitMiddleware, RequestIdMiddleware
from kaanha.http.openapi import describe_errors
from kaanha.mcp_server.http import McpHttp
from kaanha.media.endpoints import download_router as media_download_router
from kaanha.media.endpoints import upload_router as media_upload_router
from kaanha.messages.endpoints import router as messages_router
from kaanha.organizations.endpoints import router as status_router
from kaanha.payment_links.endpoints import page_router as payment_page_router
from kaanha.payment_links.endpoints import router as payment_links_router
from kaanha.payment_links.endpoints import webhook_router as payment_webhooks_router
from kaanha.quick_replies.endpoints import router as quick_replies_router
from kaanha.runtime import Runtime
from kaanha.templates.endpoints import router as templates_router
from kaanha.webhooks.dispatcher import WebhookDispatcher
from kaanha.webhooks.endpoints import router as webhooks_router
from kaanha.whatsapp.cloud_api.endpoints import router as meta_webhooks_router
from kaanha.whatsapp.sandbox.endpoints import router as sandbox_router
from kaanha.worker.runner import Worker

API_BASE = "/api/whatsapp-api"
# Meta's webhook payloads reach 3 MB (batches of up to 1,000 updates).
META_WEBHOOK_MAX_BYTES = 4 * 1024 * 1024
logger = logging.getLogger("kaanha")


def _api_router() -> APIRouter:
    api = APIRouter(prefix=API_BASE)
    for router in (
        status_router,
        contacts_router,
        consent_router,
        conversations_router,
        messages_router,
        templates_router,
        media_upload_router,
        sandbox_router,
        api_keys_router,
        events_router,
        webhooks_router,
        broadcasts_router,
        payment_links_router,
        analytics_router,
        quick_replies_router,
        ai_agents_router,
    ):
        api.include_router(router)
    return api


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else Settings())
    runtime = runtime or Runtime.from_settings(settings)
    mcp = McpHttp(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        workers = []
        if settings.run_workers:
            workers.append(asyncio.create_task(Worker(runtime).run_forever(stop)))
            workers.append(asyncio.create_task(WebhookDispatcher(runtime).run_forever(stop)))
        try:
            async with mcp.lifespan():
                yield
        finally:
            stop.set()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(worker, timeout=10)
            await runtime.close()

    app = FastAPI(
        title="Kaanha WhatsApp API",
        version=__version__,
        description="Contacts, conversations, messages and media over WhatsApp. Authenticate every call "
        'with `Authorization: Bearer <API key>`. Errors are `{"error", "code"}` JSON.',
        openapi_url=f"{API_BASE}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(_api_router())
    app.include_router(media_download_router)
    app.include_router(meta_webhooks_router)
    app.include_router(payment_webhooks_router)
    app.include_router(payment_page_router)
    app.router.routes.extend(mcp.routes())
    install_error_handlers(app)

    @app.get(f"{API_BASE}/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{API_BASE}/openapi.json", title="Kaanha API")

    def body_limit(path: str) -> int:
        if path == f"{API_BASE}/media":
            return settings.max_upload_bytes + 64 * 1024  # the file plus its multipart framing
        if path.startswith("/api/webhooks/"):
            return META_WEBHOOK_MAX_BYTES
        return settings.max_json_body_bytes

    app.add_middleware(ApiRateLimitMiddleware, settings=settings, limiter=runtime.rate_limiter)
    app.add_middleware(BodySizeLimitMiddleware, limit_for_path=body_limit)
    app.add_middleware(RequestIdMiddleware)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_errors(original_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

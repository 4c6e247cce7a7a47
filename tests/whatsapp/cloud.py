"""An organization on the Cloud API, against the fake Graph API over real HTTP.

The fake runs on a loopback port; its status and inbound webhooks go to a second `create_app` (with
its own runtime and database engine, on its own thread) at /api/webhooks/whatsapp, exactly as Meta's
would reach `kaanha serve`. The test drives its own runtime's workers with `settle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import update

from kaanha.app import create_app
from kaanha.kit.clock import now
from kaanha.models import Job
from kaanha.runtime import Runtime
from kaanha.testing.fake_graph import BackgroundServer, FakeGraphAPI, FakeGraphServer
from kaanha.worker.runner import drain
from tests.conftest import API, Tenant

TOKEN = "EAAG-test-access-token"
APP_SECRET = "test-app-secret-123"
VERIFY_TOKEN = "verify-me-please"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
CUSTOMER = "919876543210"


@dataclass
class Cloud:
    fake: FakeGraphAPI
    graph_url: str
    tenant: Tenant
    runtime: Runtime
    client: httpx.AsyncClient

    async def settle(self, *, rounds: int = 20) -> None:
        """Let everything in flight finish: the fake's webhooks, then every job (delays skipped)."""
        for _ in range(rounds):
            await self.fake.wait_for_webhooks_idle()
            async with self.runtime.database.transaction() as session:
                await session.execute(update(Job).where(Job.status == "pending").values(run_at=now()))
            if not await drain(self.runtime) and self.fake.pending_webhooks == 0:
                return

    async def customer_writes(self, text: str = "Hi", *, wa_id: str = CUSTOMER) -> str:
        wamid = await self.fake.customer_writes(PHONE_NUMBER_ID, wa_id, text, name="Asha")
        await self.settle()
        return wamid

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(f"{API}/send", json=body, headers=self.tenant.headers)
        assert response.status_code == 201, response.text
        message: dict[str, Any] = response.json()
        return message

    async def message(self, message_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{API}/messages/{message_id}", headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def connection_body(self, **overrides: Any) -> dict[str, Any]:
        return {
            "type": "cloud_api",
            "phoneNumberId": PHONE_NUMBER_ID,
            "wabaId": WABA_ID,
            "accessToken": TOKEN,
            "appSecret": APP_SECRET,
            "verifyToken": VERIFY_TOKEN,
            **overrides,
        }


def new_fake(**options: Any) -> FakeGraphAPI:
    fake = FakeGraphAPI(access_token=TOKEN, app_secret=APP_SECRET, status_delay_seconds=0.01, seed=7, **options)
    fake.add_phone_number(
        PHONE_NUMBER_ID, display_phone_number="+1 555-010-0123", verified_name="Acme Store", waba_id=WABA_ID
    )
    fake.add_template(
        WABA_ID,
        name="order_update",
        language="en_US",
        category="UTILITY",
        components=[
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["A", "B"]]},
            }
        ],
    )
    return fake


@asynccontextmanager
async def cloud_connection(
    runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant, fake: FakeGraphAPI
) -> AsyncIterator[Cloud]:
    """Serve the fake and a webhook receiver, and connect `tenant` to the fake through the API."""
    receiver_settings = runtime.settings.model_copy(update={"run_workers": False})
    async with FakeGraphServer(fake) as graph, BackgroundServer(create_app(receiver_settings)) as receiver:
        fake.callback_url = f"{receiver.url}/api/webhooks/whatsapp"
        runtime.settings.graph_api_url = graph.url
        cloud = Cloud(fake=fake, graph_url=graph.url, tenant=tenant, runtime=runtime, client=client)
        response = await client.put(f"{API}/connection", json=cloud.connection_body(), headers=tenant.headers)
        assert response.status_code == 200, response.text
        yield cloud

"""Shared by the template tests: a full template body and the API calls that read and write templates."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import API, Tenant

SHAPE = {
    "id",
    "name",
    "language",
    "category",
    "status",
    "components",
    "rejectedReason",
    "qualityScore",
    "parameterFormat",
    "createdAt",
    "updatedAt",
}
SHIPPING = {
    "name": "shipping_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["#1042"]}},
        {
            "type": "BODY",
            "text": "Hi {{1}}, your order {{2}} has shipped and arrives soon.",
            "example": {"body_text": [["Asha", "#1042"]]},
        },
        {"type": "FOOTER", "text": "Acme Store"},
        {
            "type": "BUTTONS",
            "buttons": [
                {
                    "type": "URL",
                    "text": "Track",
                    "url": "https://acme.example/t/{{1}}",
                    "example": ["https://acme.example/t/1"],
                },
                {"type": "QUICK_REPLY", "text": "Thanks"},
            ],
        },
    ],
}


async def create(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await client.post(f"{API}/templates", json=body, headers=tenant.headers)
    assert response.status_code == status, response.text
    created: dict[str, Any] = response.json()
    return created


async def get(client: httpx.AsyncClient, tenant: Tenant, template_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/templates/{template_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def listed(client: httpx.AsyncClient, tenant: Tenant, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{API}/templates{query}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found

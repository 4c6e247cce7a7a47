"""A request commits before it answers: a failed commit is a 500, never a 200 about lost work."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from kaanha.app import create_app
from kaanha.http.dependencies import PrincipalDep, SessionDep
from kaanha.kit.ids import new_id
from kaanha.models import Contact
from tests.conftest import API


async def test_failed_commit_answers_500_and_keeps_nothing(runtime, tenant):
    app = create_app(runtime.settings, runtime=runtime)

    @app.post(f"{API}/broken-twins")
    async def add_twins(principal: PrincipalDep, session: SessionDep) -> dict[str, bool]:
        # Two contacts with one phone: nothing fails until the commit at the edge.
        for _ in range(2):
            session.add(
                Contact(
                    id=new_id("ctc"), organization_id=principal.organization_id, phone="+919876543210", attributes={}
                )
            )
        return {"ok": True}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(f"{API}/broken-twins", headers=tenant.headers)

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    async with runtime.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0

"""Shared fixtures: a real database made for this run (SQLite, or PostgreSQL when asked), apps and tenants."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from kaanha.app import create_app
from kaanha.auth.api_keys import create_api_key
from kaanha.config import RateLimitSettings, Settings
from kaanha.database import Database
from kaanha.kit.clock import clock
from kaanha.migrations import upgrade_database
from kaanha.models import Model
from kaanha.organizations.service import create_organization
from kaanha.runtime import Runtime
from kaanha.testing.databases import scratch_postgres_database

API = "/api/whatsapp-api"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of our own for this run, dropped at its end, whatever earlier runs left behind."""
    requested = os.environ.get("KAANHA_TEST_DATABASE_URL")
    if not requested:
        with tempfile.TemporaryDirectory(prefix="kaanha-test-") as folder:
            url = f"sqlite+aiosqlite:///{folder}/test.db"
            upgrade_database(url)
            yield url
        return
    with scratch_postgres_database(requested, prefix="kaanha_test") as url:
        upgrade_database(url)
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        secret_key="test-secret-key",
        run_workers=False,
        # Generous by default so tests don't trip over each other; rate-limit tests set their own.
        rate_limits=RateLimitSettings(api="100000/minute", per_recipient="1000/hour"),
    )


@pytest_asyncio.fixture
async def runtime(settings: Settings, database: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.from_settings(settings, database=database)
    yield runtime
    await _empty_tables(database)


async def _empty_tables(database: Database) -> None:
    async with database.transaction() as session:
        for table in reversed(Model.metadata.sorted_tables):
            await session.execute(table.delete())


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime.settings, runtime=runtime)


@pytest_asyncio.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@dataclass
class Tenant:
    organization_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(
    runtime: Runtime, name: str = "Acme", *, scopes: list[str] | None = None, plan: str = "starter"
) -> Tenant:
    async with runtime.database.transaction() as session:
        organization = await create_organization(session, name=name, plan=plan)
        created = await create_api_key(session, organization_id=organization.id, name="test", scopes=scopes)
    return Tenant(organization_id=organization.id, key=created.secret)


@pytest_asyncio.fixture
async def tenant(runtime: Runtime) -> Tenant:
    return await make_tenant(runtime, "Acme")


@pytest_asyncio.fixture
async def other_tenant(runtime: Runtime) -> Tenant:
    return await make_tenant(runtime, "Globex")


@pytest.fixture
def frozen_clock() -> Iterator[datetime]:
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    clock.freeze(start)
    yield start
    clock.unfreeze()

"""Alembic migrations, shipped inside the package so that `kaanha db upgrade` works wherever it is installed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe to run on every start."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_database_async(database_url: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop, so it runs in a thread beside ours.
    await asyncio.to_thread(upgrade_database, database_url, revision)

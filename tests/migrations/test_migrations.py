"""The migrations build exactly the schema the models describe, and can be undone and redone."""

from __future__ import annotations

import asyncio

from alembic import command

from kaanha.migrations import alembic_config


async def test_models_and_migrations_agree(database_url, runtime):
    # `alembic check` fails if autogenerate would write any operation: a model changed without a migration.
    await asyncio.to_thread(command.check, alembic_config(database_url))


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/roundtrip.db"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)

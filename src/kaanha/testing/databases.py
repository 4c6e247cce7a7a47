"""Scratch PostgreSQL databases: created for one run, dropped after it whatever happened."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def scratch_postgres_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """Yield the URL of a new database on the server of `server_url` (same driver), then drop it.

    `server_url` names any database the role can connect to; the new one is `<prefix>_<random>`,
    so runs never meet what an earlier one left behind.
    """
    base = make_url(server_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(
        base.set(drivername="postgresql+psycopg", database=base.database or "postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()

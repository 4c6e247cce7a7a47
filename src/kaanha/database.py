"""The engine and session factory; transactions are opened and committed by entry points only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers work beside the one writer; NORMAL is durable across process crashes in WAL;
    # the busy timeout makes concurrent writers wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_before_savepoint(connection: Connection, _name: str) -> None:
    """Open the real transaction before a savepoint that would otherwise be the first statement.

    pysqlite begins a transaction only before the first INSERT/UPDATE/DELETE; a SAVEPOINT issued
    earlier starts one of its own, and releasing it commits: one message of a batch would be
    committed alone. IMMEDIATE takes the write lock now (waiting out the busy timeout), as the
    write pysqlite was about to begin would.
    """
    raw = connection.connection.dbapi_connection
    driver = getattr(raw, "_connection", None)  # aiosqlite's connection under SQLAlchemy's adapter
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **options: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "savepoint", _begin_before_savepoint)
        return engine
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 20)
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)


# PostgreSQL's deadlock_detected, serialization_failure and lock_not_available: the transaction lost
# a race with another and may simply be run again.
_CONFLICT_STATES = {"40P01", "40001", "55P03"}


def is_transient(error: BaseException) -> bool:
    """True for a database error that says "try again" (a deadlock, a busy SQLite) rather than "wrong".

    Code that sets a failing item aside to save the rest must re-raise these instead: the item
    was fine, and setting it aside would lose it.
    """
    if isinstance(error, OperationalError):
        return True  # SQLite's "database is locked", a dropped connection
    if isinstance(error, DBAPIError):
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return state in _CONFLICT_STATES or "deadlock detected" in str(error.orig)
    return False


class Database:
    """One engine per process and the sessions made from it."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **options)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed when the block ends and rolled back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

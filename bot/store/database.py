"""The one database every part of the store shares: engine, snapshot reader, SQLite writer, dialect.

Each query runs its own short transaction on a pooled connection (Core statements, no ORM identity
map), so the parts of the store are safe to call from many concurrent tasks and processes. Writes begin
IMMEDIATE on SQLite (see :mod:`bot.store.db`); read-only queries use deferred snapshot transactions so
they never wait for writers. Upserts use the dialect's own ``INSERT .. ON CONFLICT`` (SQLite and
PostgreSQL share the syntax), chosen by dialect name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from bot.observability.logs import get_logger
from bot.store.db import is_sqlite, read_only, sqlite_reader, sqlite_writer
from bot.store.reader import SqliteReader
from bot.store.writer import SqliteWriter

__all__ = ["Database", "Queries"]

T = TypeVar("T")

log = get_logger(__name__)

# A busy WAL checkpoint (a reader in the way) is tried again this many times, a little later each time.
_CHECKPOINT_TRIES: Final = 5


class Database:
    """The engine of gembot's database and the plumbing every query shares."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use ``engine`` (shared; the caller or :meth:`close` disposes of it)."""
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
        self._engine = engine
        self._reader = read_only(engine)
        # SQLite allows one writer: this process's writes run on one thread, committed in groups.
        self._writer = sqlite_writer(engine) if is_sqlite(engine) else None
        # The reads of every message (history, chat settings) on the event loop (bot.store.reader).
        self._rows_reader: SqliteReader | None = sqlite_reader(engine) if is_sqlite(engine) else None
        # Both dialects spell upserts INSERT .. ON CONFLICT; each has its own construct for it.
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine."""
        return self._engine

    @property
    def reader(self) -> AsyncEngine:
        """The same engine for transactions that only read: deferred snapshots on SQLite."""
        return self._reader

    @property
    def writer(self) -> SqliteWriter | None:
        """The SQLite writer (None on PostgreSQL)."""
        return self._writer

    @property
    def insert(self) -> Any:
        """The dialect's ``insert`` construct, which has ``on_conflict_do_*``."""
        return self._insert

    async def run_write(
        self, op: Callable[[Connection], T], *, bulk: bool = False, at_once: bool = False
    ) -> T:
        """Run ``op`` (synchronous statements on a Connection) in one write transaction; its result.

        On SQLite it runs with the other writes queued at that moment, in one transaction (each in its
        own savepoint should one fail), on the event loop while the lock is free (bot.store.writer);
        ``bulk`` (many rows: retention, erasure) sends it to the writer thread instead; ``at_once``
        commits it at once when nothing waits before it (see ``SqliteWriter.run``). On PostgreSQL it
        runs in a transaction of its own.
        """
        if self._writer is not None:
            return await self._writer.run(op, bulk=bulk, at_once=at_once)
        async with self._engine.begin() as conn:
            return await conn.run_sync(op)

    async def read_rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Every row of a small read-only ``statement``, in a snapshot (on the event loop on SQLite)."""
        if self._rows_reader is not None:
            return await self._rows_reader.rows(statement, params)
        async with self._reader.connect() as conn:
            return (await conn.execute(statement, params)).all()

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        if self._rows_reader is not None:
            await self._rows_reader.aclose()
        if self._writer is not None:
            await self._writer.aclose()
        await self._engine.dispose()

    async def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` (for /readyz)."""
        try:
            async with self._reader.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (SQLite only; outside any transaction)."""
        if not is_sqlite(self._engine):
            return
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            for attempt in range(_CHECKPOINT_TRIES):
                # The aiosqlite connection itself: no SQLAlchemy BEGIN, as a checkpoint cannot run in one.
                cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = await cursor.fetchone()
                await cursor.close()
                if row is None or not row[0]:
                    return
                # Busy: a reader still uses the WAL. Until it is truncated, erased text stays in it.
                await asyncio.sleep(0.05 * (attempt + 1))
            log.warning("store.checkpoint_busy", tries=_CHECKPOINT_TRIES)


class Queries:
    """The base of each part of the store: the shared :class:`Database` under the names queries use.

    The database's own bound methods are kept, not wrapped, so a query awaits its write directly.
    """

    def __init__(self, database: Database) -> None:
        self._engine = database.engine
        self._reader = database.reader
        self._writer = database.writer
        self._insert = database.insert
        self.run_write = database.run_write
        self._read_rows = database.read_rows
        self._checkpoint = database.checkpoint

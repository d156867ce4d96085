"""Engines: SQLite pragmas, transaction control and the writer thread; PostgreSQL pool settings.

SQLite (``sqlite+aiosqlite:///path``):

* a database file gembot creates is readable by its owner only (0600; SQLite gives its ``-wal`` and
  ``-shm`` files the same mode), and so is every folder it creates for it (0700); a folder that already
  exists (``/tmp``, a volume) is left as it is;
* every pooled connection gets ``busy_timeout`` (and the driver ``timeout``), ``journal_mode=WAL``,
  ``synchronous=NORMAL``, ``foreign_keys=ON`` and ``secure_delete=ON`` (deleted text is overwritten
  with zeros in the file, so retention and /forget really erase it);
* pysqlite's legacy transaction handling is off (``isolation_level=None`` on the driver) and
  SQLAlchemy's ``begin`` event emits the BEGIN itself: ``BEGIN IMMEDIATE`` by default, so a write
  transaction takes the write lock up front and waits on ``busy_timeout`` instead of failing with
  "database is locked" on a refused read-to-write upgrade;
* connections opened through :func:`read_only` begin a plain deferred ``BEGIN``: in WAL mode readers
  never wait for the writer and never upgrade, so snapshot reads (history, stats, ping) do not queue
  behind writes. Only use it for transactions that never write.

Writes go through :func:`sqlite_writer` (bot.store.writer): the writes that queue are committed
together, on the event loop while SQLite's write lock is free, else on a thread that waits for it
(``BEGIN IMMEDIATE`` plus ``busy_timeout`` still serializes writers of other processes). The small
reads of every message go through :func:`sqlite_reader` (bot.store.reader), on the event loop too.

PostgreSQL (``postgresql+asyncpg://...``) gets a pre-pinged, recycled connection pool; everything else
is the same code. A ``search_path`` query parameter (``...?search_path=gembot``) puts gembot's tables
in that schema (it must exist): several deployments or test runs can share one database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from bot.store.reader import SqliteReader
from bot.store.sqlite_sync import BUSY_TIMEOUT_S
from bot.store.writer import SqliteWriter

__all__ = [
    "BUSY_TIMEOUT_S",
    "create_engine",
    "is_sqlite",
    "read_only",
    "sqlite_path",
    "sqlite_reader",
    "sqlite_writer",
]

_READ_ONLY: Final = "gembot_read_only"

_SQLITE_PRAGMAS: Final = (
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for ``url`` with gembot's connection settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        search_path = parsed.query.get("search_path")
        if search_path is not None:
            # asyncpg takes no `options`: gembot's own query parameter becomes a server setting.
            value = search_path if isinstance(search_path, str) else ",".join(search_path)
            connect_args["server_settings"] = {"search_path": value}
            parsed = parsed.difference_update_query(["search_path"])
        return create_async_engine(
            parsed,
            echo=echo,
            connect_args=connect_args,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_recycle=1800,
            pool_timeout=BUSY_TIMEOUT_S,
        )
    return create_async_engine(parsed, echo=echo, pool_pre_ping=True)


def sqlite_writer(engine: AsyncEngine) -> SqliteWriter:
    """The writer of ``engine``'s SQLite file, with the same pragmas and BEGIN IMMEDIATE."""
    return SqliteWriter(engine.url, _on_sqlite_connect, _on_sqlite_begin)


def sqlite_reader(engine: AsyncEngine) -> SqliteReader:
    """The event loop's reader of ``engine``'s SQLite file, with the same pragmas (autocommit snapshots)."""
    return SqliteReader(engine.url, _on_sqlite_connect)


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose transactions only read; on SQLite they begin deferred."""
    return engine.execution_options(**{_READ_ONLY: True})


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a file-backed SQLite URL (None for other databases, in memory or file: URIs)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None:
        _create_private(path)
    engine = create_async_engine(
        url,
        echo=echo,
        # isolation_level=None turns off the sqlite3 module's own BEGIN handling; _begin emits ours.
        connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None},
        pool_timeout=BUSY_TIMEOUT_S,
        # Every transaction here is ended by its own Connection (commit, or rollback on error or close),
        # so the pool's extra ROLLBACK on check-in is a wasted round trip to aiosqlite's thread.
        pool_reset_on_return=None,
    )
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _create_private(path: Path) -> None:
    """Create the database file (0600) and the folders leading to it (0700) that do not exist yet."""
    missing: list[Path] = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    # An existing database keeps the mode its owner gave it.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
            cursor.fetchall()
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.fetchall()
            except sqlite3.OperationalError as exc:
                # Two connections converting a fresh file at once deadlock on the lock upgrade, and
                # SQLite fails one at once instead of calling the busy handler. WAL is a property of the
                # file: the winner converts it and this connection follows from its next transaction.
                if "locked" not in str(exc):
                    raise
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    options: dict[str, Any] = dict(conn.get_execution_options())
    conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY) else "BEGIN IMMEDIATE")

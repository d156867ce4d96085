"""The reads of every message (history, chat settings, usage) from one SQLite file, on the event loop.

In WAL mode a single SELECT is its own snapshot and never waits for the writer, and these reads are
small (bounded by the context's size), so each runs at once on a connection of the event loop's own
(autocommit, ``busy_timeout=0``): no hand-off to a thread and back, no GIL traded per statement
(docs/benchmarks.md measures it). Should SQLite still answer "database is locked" (a connection
recovering the WAL after a crash), the read runs again on a thread whose connection waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable

from bot.store.writer import is_busy

__all__ = ["SqliteReader"]

_LOOP_PRAGMAS: Final = ("PRAGMA busy_timeout=0",)


class SqliteReader:
    """Runs read-only statements for one SQLite file on the event loop (a thread when SQLite is busy)."""

    def __init__(self, url: URL, on_connect: Callable[..., None]) -> None:
        url = url.set(drivername="sqlite")

        def on_loop_connect(dbapi_connection: Any, record: Any) -> None:
            on_connect(dbapi_connection, record)
            for pragma in _LOOP_PRAGMAS:
                dbapi_connection.execute(pragma).close()

        # Autocommit: no BEGIN is sent, so each statement is its own deferred snapshot.
        self._loop_engine: Engine = create_engine(
            url,
            connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 0.0},
            poolclass=StaticPool,  # one connection, used only on the event loop
            pool_reset_on_return=None,
        )
        self._engine: Engine = create_engine(
            url,
            connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 30.0},
            poolclass=StaticPool,  # one connection, used only by the thread
            pool_reset_on_return=None,
        )
        event.listen(self._loop_engine, "connect", on_loop_connect)
        event.listen(self._engine, "connect", on_connect)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gembot-sqlite-read")
        self._loop_conn: Connection | None = None
        self._thread_conn: Connection | None = None  # used on the thread only

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Every row ``statement`` returns."""
        if self._loop_conn is None:
            self._loop_conn = self._loop_engine.connect()
        try:
            return self._rows(self._loop_conn, statement, params)
        except OperationalError as exc:
            if not is_busy(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._rows_on_thread, statement, params)

    def _rows_on_thread(self, statement: Executable, params: Mapping[str, Any] | None) -> Sequence[Row[Any]]:
        if self._thread_conn is None:
            self._thread_conn = self._engine.connect()
        return self._rows(self._thread_conn, statement, params)

    @staticmethod
    def _rows(
        conn: Connection, statement: Executable, params: Mapping[str, Any] | None
    ) -> Sequence[Row[Any]]:
        try:
            return conn.execute(statement, params).all()
        finally:
            conn.rollback()  # ends SQLAlchemy's bookkeeping of the (driver-less) transaction

    async def aclose(self) -> None:
        """Stop the thread and close the connections."""
        if self._loop_conn is not None:
            self._loop_conn.close()
        self._loop_engine.dispose()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_thread_conn)
        self._thread.shutdown(wait=True)

    def _close_thread_conn(self) -> None:
        if self._thread_conn is not None:
            self._thread_conn.close()
        self._engine.dispose()

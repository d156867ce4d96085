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

from sqlalchemy.engine import URL, Connection, Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import Executable

from bot.store.sqlite_sync import is_busy, one_connection_engine

__all__ = ["SqliteReader"]

_LOOP_PRAGMAS: Final = ("PRAGMA busy_timeout=0",)


class SqliteReader:
    """Runs read-only statements for one SQLite file on the event loop (a thread when SQLite is busy)."""

    def __init__(self, url: URL, on_connect: Callable[..., None]) -> None:
        # Autocommit: no BEGIN is sent, so each statement is its own deferred snapshot.
        self._loop_engine = one_connection_engine(url, on_connect, waits=False, pragmas=_LOOP_PRAGMAS)
        self._engine = one_connection_engine(url, on_connect, waits=True)
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

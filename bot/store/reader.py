"""Snapshot reads of one SQLite file on a few threads of their own, one event-loop hop per query.

Through aiosqlite a read is several hops between the event loop and the driver's thread (checkout,
BEGIN, execute, fetch, close), each a future and a wake-up of a loop that is busy answering. Here a read
is one function call on a reader thread with its own synchronous connection: the statement runs and its
rows are fetched there, and the loop is woken once with the result. In WAL mode a single SELECT is its
own snapshot and never waits for the writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.sql import Executable

_THREADS = 2


class SqliteReader:
    """Runs read-only statements for one SQLite file on ``_THREADS`` threads, each with its connection."""

    def __init__(self, url: URL, on_connect: Callable[..., None]) -> None:
        self._engine: Engine = create_engine(
            url.set(drivername="sqlite"),
            # Autocommit: no BEGIN is sent, so each statement is its own deferred snapshot.
            connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 30.0},
            pool_size=_THREADS,
            max_overflow=0,
            pool_reset_on_return=None,
        )
        event.listen(self._engine, "connect", on_connect)
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            _THREADS, thread_name_prefix="gembot-sqlite-read"
        )

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Every row ``statement`` returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._rows, statement, params)

    def _rows(self, statement: Executable, params: Mapping[str, Any] | None) -> Sequence[Row[Any]]:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._engine.connect()
            with self._lock:
                self._connections.append(conn)
        try:
            return conn.execute(statement, params).all()
        finally:
            conn.rollback()  # ends SQLAlchemy's bookkeeping of the (driver-less) transaction

    async def aclose(self) -> None:
        """Stop the threads and close their connections."""
        self._threads.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._engine.dispose()

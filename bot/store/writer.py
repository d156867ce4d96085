"""One writer thread for SQLite: whole write transactions run there, several at a time (group commit).

Through aiosqlite every statement of a transaction is a hop to the driver's thread and back to the event
loop, and SQLite lets one writer in at a time, so under load the writes form a queue whose every step
waits for a busy event loop (docs/benchmarks.md). Here a write is a plain function of a synchronous
connection; the thread runs every write waiting at that moment inside one ``BEGIN IMMEDIATE``
transaction, commits once, and wakes the waiting tasks with one callback. Should one write of a batch
fail, the batch is rolled back and run again with each write in its own SAVEPOINT, so the failing
write rolls back alone. Other processes still meet SQLite's lock and ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

T = TypeVar("T")
WriteOp = Callable[[Connection], Any]

# Enough to amortize a commit, small enough that one transaction never holds the lock for long.
_MAX_BATCH = 256


class SqliteWriter:
    """Runs write transactions for one SQLite file on a dedicated thread, batching those that queue."""

    def __init__(self, url: URL, on_connect: Callable[..., None], on_begin: Callable[..., None]) -> None:
        self._engine: Engine = create_engine(
            url.set(drivername="sqlite"),
            connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 30.0},
            poolclass=StaticPool,  # one connection, used only by the writer thread
        )
        event.listen(self._engine, "connect", on_connect)
        event.listen(self._engine, "begin", on_begin)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gembot-sqlite-writer")
        self._queue: list[tuple[WriteOp, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None

    @property
    def engine(self) -> Engine:
        """The synchronous engine the writer commits on (for event listeners)."""
        return self._engine

    async def run(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a write transaction (possibly shared with other writes) and return its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((op, future))
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain(), name="sqlite-writer")
        # The write may still commit after a caller is cancelled: that is the safe side for a log.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            try:
                outcomes = await loop.run_in_executor(self._thread, self._commit, [op for op, _ in batch])
            except BaseException as exc:  # the commit itself failed: nothing of the batch stands
                outcomes = [(False, exc)] * len(batch)
                if not isinstance(exc, Exception):
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, ops: list[WriteOp]) -> list[tuple[bool, Any]]:
        if len(ops) > 1:
            # Optimistically all in one transaction (writes rarely fail: their conflicts are upserts);
            # should one fail, the batch is rolled back and run again with a savepoint per write.
            with contextlib.suppress(Exception), self._engine.connect() as conn, conn.begin():
                return [(True, op(conn)) for op in ops]
        outcomes: list[tuple[bool, Any]] = []
        with self._engine.connect() as conn, conn.begin():
            if len(ops) == 1:
                # Alone, it needs no savepoint: its error rolls back the transaction as it would anyway.
                try:
                    outcomes.append((True, ops[0](conn)))
                except Exception as exc:
                    conn.rollback()
                    return [(False, exc)]
                return outcomes
            for op in ops:
                try:
                    with conn.begin_nested():
                        outcomes.append((True, op(conn)))
                except Exception as exc:
                    outcomes.append((False, exc))
        return outcomes

    async def aclose(self) -> None:
        """Finish the queued writes, then stop the thread and close the connection."""
        if self._draining is not None:
            await asyncio.gather(self._draining, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=True)

"""SQLite writes of one process, committed in groups: on the event loop while the write lock is free,
on a thread of their own when they would have to wait.

Every write waiting at that moment runs inside one ``BEGIN IMMEDIATE`` transaction with one commit
(group commit). Should one write of a batch fail, the batch is rolled back and run again with each
write in its own SAVEPOINT, so the failing write rolls back alone.

Where a batch runs: the writes of a message (a few rows each) run at once on the event loop, on a
connection that never waits for SQLite's lock (``busy_timeout=0``): in WAL mode with
``synchronous=NORMAL`` a commit appends to the WAL without an fsync, so such a batch takes well under a
millisecond, and handing it to a thread costs more than running it (every statement would trade the
GIL between the thread and the loop; docs/benchmarks.md measures it). A batch goes to the writer thread
instead, whose connection waits up to ``busy_timeout`` for the lock, when another process holds the
lock (``gembot purge``, a second process on the file) or when it holds a bulk write (retention,
erasure: many rows, maybe slow to overwrite with ``secure_delete``). The loop's connection never
checkpoints (``wal_autocheckpoint=0``): the thread copies the WAL into the database at most every
:data:`CHECKPOINT_INTERVAL` seconds while there are writes, so the fsyncs of a checkpoint never hold the
loop either.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError

from bot.store.sqlite_sync import is_busy, one_connection_engine

__all__ = ["CHECKPOINT_INTERVAL", "SqliteWriter", "WriteOp"]

T = TypeVar("T")
WriteOp = Callable[[Connection], Any]
Outcomes = list[tuple[bool, Any]]

# Enough to amortize a commit, small enough that one transaction never holds the lock for long.
_MAX_BATCH: Final = 256
# Seconds between the WAL checkpoints the writer thread runs while the loop's connection writes.
CHECKPOINT_INTERVAL: Final = 1.0
_LOOP_PRAGMAS: Final = ("PRAGMA busy_timeout=0", "PRAGMA wal_autocheckpoint=0")


@dataclass(slots=True)
class _Queued:
    op: WriteOp
    future: asyncio.Future[Any]
    bulk: bool


class SqliteWriter:
    """Runs the write transactions of one SQLite file, batching those that queue."""

    def __init__(self, url: URL, on_connect: Callable[..., None], on_begin: Callable[..., None]) -> None:
        self._engine = one_connection_engine(url, on_connect, waits=True)
        self._loop_engine = one_connection_engine(url, on_connect, waits=False, pragmas=_LOOP_PRAGMAS)
        for engine in (self._engine, self._loop_engine):
            event.listen(engine, "begin", on_begin)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gembot-sqlite-writer")
        self._queue: list[_Queued] = []
        self._draining: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointed_at = float("-inf")
        self._unchecked = False  # the loop's connection committed since the last checkpoint

    @property
    def engine(self) -> Engine:
        """The writer thread's synchronous engine."""
        return self._engine

    @property
    def loop_engine(self) -> Engine:
        """The event loop's synchronous engine (it never waits for SQLite's lock)."""
        return self._loop_engine

    async def run(self, op: Callable[[Connection], T], *, bulk: bool = False, at_once: bool = False) -> T:
        """Run ``op`` in a write transaction (possibly shared with other writes) and return its result.

        ``bulk``: a write of many rows (retention, erasure), run on the writer thread so it never holds
        the event loop. ``at_once``: when nothing is queued before it and the lock is free, commit it
        now, alone, without waiting for the loop's next turn (for a caller that holds others up, such
        as the recording of a batch of received updates).
        """
        loop = asyncio.get_running_loop()
        if at_once and not bulk and not self._queue and (self._draining is None or self._draining.done()):
            outcomes = self._commit_on_loop([op])
            if outcomes is not None:
                self._checkpoint_soon(loop)
                [(ok, value)] = outcomes
                if ok:
                    return cast(T, value)
                raise value
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Queued(op, future, bulk))
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain(), name="sqlite-writer")
        # The write may still commit after a caller is cancelled: that is the safe side for a log.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            ops = [queued.op for queued in batch]
            try:
                outcomes = None if any(queued.bulk for queued in batch) else self._commit_on_loop(ops)
                if outcomes is None:
                    outcomes = await loop.run_in_executor(self._thread, self._commit, self._engine, ops)
            except BaseException as exc:  # the commit itself failed: nothing of the batch stands
                outcomes = [(False, exc)] * len(batch)
                if not isinstance(exc, Exception):
                    for queued in batch:
                        if not queued.future.done():
                            queued.future.set_exception(exc)
                    raise
            for queued, (ok, value) in zip(batch, outcomes, strict=True):
                if queued.future.done():
                    continue
                if ok:
                    queued.future.set_result(value)
                else:
                    queued.future.set_exception(value)
            self._checkpoint_soon(loop)

    def _commit_on_loop(self, ops: list[WriteOp]) -> Outcomes | None:
        """The batch committed on the loop's connection; None when another connection holds the lock."""
        try:
            outcomes = self._commit(self._loop_engine, ops)
        except OperationalError as exc:
            if is_busy(exc):  # only BEGIN IMMEDIATE waits for the lock; the batch did nothing
                return None
            raise
        self._unchecked = True
        return outcomes

    def _checkpoint_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Copy the WAL into the database on the writer thread, at most every CHECKPOINT_INTERVAL s."""
        busy = self._checkpointing is not None and not self._checkpointing.done()
        if not self._unchecked or busy or loop.time() - self._checkpointed_at < CHECKPOINT_INTERVAL:
            return
        self._unchecked = False
        self._checkpointed_at = loop.time()
        self._checkpointing = loop.run_in_executor(self._thread, self._checkpoint)

    def _checkpoint(self) -> None:
        # PASSIVE: copies what no reader still needs and waits for nobody; the next one does the rest.
        # On the driver's connection itself: SQLAlchemy would wrap it in a transaction, where it does nothing.
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    @staticmethod
    def _commit(engine: Engine, ops: list[WriteOp]) -> Outcomes:
        if len(ops) > 1:
            # Optimistically all in one transaction (writes rarely fail: their conflicts are upserts);
            # should one fail, the batch is rolled back and run again with a savepoint per write.
            with contextlib.suppress(Exception), engine.connect() as conn, conn.begin():
                return [(True, op(conn)) for op in ops]
        outcomes: Outcomes = []
        with engine.connect() as conn, conn.begin():
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
        """Finish the queued writes and the last checkpoint; stop the thread, close the connections."""
        if self._draining is not None:
            await asyncio.gather(self._draining, return_exceptions=True)
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        self._loop_engine.dispose()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=True)

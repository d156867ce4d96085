"""Conversation sequencers: at most one answer per conversation at a time, in arrival order.

:class:`LocalSequencer` is one FIFO lock per conversation inside the process: enough for SQLite, whose
database one process owns.

:class:`PostgresSequencer` puts the same local FIFO in front of a PostgreSQL session-level advisory lock
keyed by the conversation, so several replicas on one database answer a conversation one message at a
time, each seeing the exchanges stored before it. The lock is held for the whole answer, and a replica
holds at most one lock per conversation (the local FIFO lets one message per conversation through).

Connections: an advisory lock belongs to the session that took it, so a naive sequencer holds one
connection per conversation being answered, and a replica answering 200 conversations at once would need
200 connections (PostgreSQL's default ``max_connections`` is 100 for every replica together). Instead:

* uncontended (the usual case: no other replica is answering this conversation right now), the lock is
  taken with ``pg_try_advisory_lock`` on one shared *holder* connection, which holds the locks of every
  conversation this replica is answering: two short queries per message, one connection per replica;
* contended (``pg_try_advisory_lock`` says another session holds it, or waits for it), the message
  waits with a blocking ``pg_advisory_lock`` on a connection of its own, and keeps that connection
  until its answer is done. PostgreSQL queues lock requests first come, first served, and a try-lock
  fails while others wait, so messages of one conversation on several replicas are answered in the
  order they asked for the lock. At most ``waiters`` such connections per replica; beyond that,
  contended messages wait in the process for a free one.

When a connection breaks (the database restarted, a replica died), PostgreSQL releases its locks: a dead
replica never blocks a conversation. The price of sharing the holder connection: if it breaks while
answers are in flight, their locks are gone until they finish (messages of those conversations arriving
on other replicas right then may be answered concurrently). Session-level advisory locks need session
pooling: behind PgBouncer in transaction mode they do not work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol

from sqlalchemy import TextClause, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.observability.logs import get_logger
from bot.store.db import create_engine

__all__ = [
    "LocalSequencer",
    "PostgresSequencer",
    "Sequencer",
    "Wakeups",
    "advisory_key",
    "lock_namespace",
]

log = get_logger(__name__)

_TRY_LOCK: Final = text("SELECT pg_try_advisory_lock(:key)")
_LOCK: Final = text("SELECT pg_advisory_lock(:key)")
_UNLOCK: Final = text("SELECT pg_advisory_unlock(:key)")


class Sequencer(Protocol):
    """Serializes the answers of one conversation."""

    def hold(self, key: tuple[str, ...]) -> AbstractAsyncContextManager[None]:
        """Wait for the earlier messages of ``key``'s conversation, then hold it until the block ends."""
        ...

    def __len__(self) -> int:
        """Conversations held or waited for in this process."""
        ...

    async def aclose(self) -> None:
        """Free the resources (connections) behind the locks."""
        ...


class LocalSequencer:
    """One FIFO lock per conversation, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold ``key`` (asyncio.Lock wakes its waiters first come, first served)."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)

    async def aclose(self) -> None:
        """Nothing to free."""


class Wakeups:
    """Per-conversation signals: a message waiting for an earlier one of its conversation wakes as soon
    as a message of that conversation finishes in this process (else at its timeout, for other replicas)."""

    def __init__(self) -> None:
        self._events: dict[Hashable, tuple[asyncio.Event, int]] = {}

    async def wait(self, key: Hashable, seconds: float) -> None:
        """Return on the next :meth:`notify` of ``key`` or after ``seconds``."""
        event, users = self._events.get(key, (None, 0))
        if event is None:
            event = asyncio.Event()
        self._events[key] = (event, users + 1)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
        finally:
            current, users = self._events.get(key, (None, 0))
            if current is event:
                if users <= 1:
                    del self._events[key]
                else:
                    self._events[key] = (event, users - 1)

    def notify(self, key: Hashable) -> None:
        """Wake every message waiting on ``key`` now."""
        event, _ = self._events.pop(key, (None, 0))
        if event is not None:
            event.set()

    def __len__(self) -> int:
        return len(self._events)


def advisory_key(key: tuple[str, ...], namespace: str = "") -> int:
    """The signed 64-bit advisory lock id of a conversation (the same in every process and version).

    Advisory locks are database-wide: ``namespace`` (the schema gembot's tables live in, from the URL's
    ``search_path``) keeps two deployments sharing one database from serializing each other's chats.
    Without one the id is what it always was.
    """
    parts = (namespace, *key) if namespace else key
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8, person=b"gembot-seq").digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_namespace(url: str) -> str:
    """The ``search_path`` query parameter of a PostgreSQL URL ("" when there is none)."""
    value = make_url(url).query.get("search_path") or ""
    return value if isinstance(value, str) else ",".join(value)


class PostgresSequencer:
    """The local FIFO, then a PostgreSQL advisory lock shared by every replica on the database."""

    def __init__(self, url: str, *, waiters: int = 16, engine: AsyncEngine | None = None) -> None:
        """Lock through ``url`` (its own small pool, not the store's; or ``engine`` if given)."""
        if waiters < 1:
            raise ValueError("waiters must be at least 1")
        base = engine if engine is not None else create_engine(url)
        self._owns_engine = engine is None
        self._base = base
        # No transactions: session-level locks, and nothing left "idle in transaction" for a whole answer.
        self._engine = base.execution_options(isolation_level="AUTOCOMMIT")
        self._local = LocalSequencer()
        self._namespace = lock_namespace(url)
        self._holder: AsyncConnection | None = None
        self._holder_lock = asyncio.Lock()
        self._waiters = asyncio.Semaphore(waiters)
        self._background: set[asyncio.Future[None]] = set()
        self.contended = 0
        """Messages that found their conversation locked by another session (and waited for it)."""

    def __len__(self) -> int:
        return len(self._local)

    @asynccontextmanager
    async def hold(self, key: tuple[str, ...]) -> AsyncIterator[None]:
        """Hold the conversation in this process and in the database until the block ends."""
        async with self._local.hold(key):
            lock_id = advisory_key(key, self._namespace)
            if await self._try_shared(lock_id):
                try:
                    yield
                finally:
                    await self._unlock_shared(lock_id)
                return
            self.contended += 1
            async with self._waiters, self._dedicated(lock_id):
                yield

    # -- the shared holder connection

    async def _try_shared(self, lock_id: int) -> bool:
        task = asyncio.ensure_future(self._on_holder(_TRY_LOCK, lock_id))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The query runs on; should it take the lock after all, give it back.
            task.add_done_callback(lambda done: self._release_if_taken(done, lock_id))
            raise

    def _release_if_taken(self, done: asyncio.Future[bool], lock_id: int) -> None:
        if not done.cancelled() and done.exception() is None and done.result():
            task = asyncio.ensure_future(self._unlock_shared(lock_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _unlock_shared(self, lock_id: int) -> None:
        task = asyncio.ensure_future(self._on_holder(_UNLOCK, lock_id, retry=False))
        try:
            await asyncio.shield(task)
        except Exception:
            # The holder connection broke: its locks went with it.
            log.warning("sequencer.unlock_failed", exc_info=True)

    async def _on_holder(self, statement: TextClause, lock_id: int, *, retry: bool = True) -> bool:
        async with self._holder_lock:
            for attempt in (1, 2):
                conn = self._holder
                if conn is None:
                    conn = self._holder = await self._engine.connect()
                try:
                    result = await conn.execute(statement, {"key": lock_id})
                    return bool(result.scalar_one())
                except Exception:
                    self._holder = None
                    await _discard(conn)
                    if attempt == 2 or not retry:
                        raise
                    log.warning("sequencer.holder_reconnect", exc_info=True)
        raise AssertionError("unreachable")

    # -- dedicated connections for contended conversations

    @asynccontextmanager
    async def _dedicated(self, lock_id: int) -> AsyncIterator[None]:
        conn = await self._engine.connect()
        locked = False
        try:
            await conn.execute(_LOCK, {"key": lock_id})
            locked = True
            yield
        finally:
            if not locked:
                # Failed or cancelled while waiting: the lock may have been granted all the same.
                await _discard(conn)
            else:
                try:
                    await asyncio.shield(conn.execute(_UNLOCK, {"key": lock_id}))
                except Exception:
                    log.warning("sequencer.unlock_failed", exc_info=True)
                    await _discard(conn)
                except BaseException:
                    await _discard(conn)
                    raise
                else:
                    await conn.close()

    async def aclose(self) -> None:
        """Close the holder connection (releasing its locks) and, if it is ours, the pool."""
        async with self._holder_lock:
            if self._holder is not None:
                await _discard(self._holder)
                self._holder = None
        if self._owns_engine:
            await self._base.dispose()


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection for good: the server ends the session and drops its advisory locks."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()

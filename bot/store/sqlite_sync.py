"""Synchronous SQLite connections beside the async engine: one connection each, for the event loop (which
must never wait for SQLite's lock) or for a thread of its own (which waits up to ``busy_timeout``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

__all__ = ["BUSY_TIMEOUT_S", "is_busy", "one_connection_engine"]

# How long a connection that may wait (the async engine's, a thread's) waits for another one's lock.
BUSY_TIMEOUT_S: Final = 30.0


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's "database is locked" (another connection holds the lock)."""
    orig = error.orig if isinstance(error, OperationalError) else error
    return isinstance(orig, sqlite3.OperationalError) and orig.sqlite_errorcode == sqlite3.SQLITE_BUSY


def one_connection_engine(
    url: URL, on_connect: Callable[..., None], *, waits: bool, pragmas: tuple[str, ...] = ()
) -> Engine:
    """A synchronous engine of one connection to ``url``'s file, in autocommit (SQLAlchemy or the caller
    begins transactions), set up by ``on_connect`` and then ``pragmas``. ``waits``: for a thread, the
    connection waits :data:`BUSY_TIMEOUT_S` for a lock; otherwise (the event loop) it fails at once and
    ``pragmas`` should include ``PRAGMA busy_timeout=0``."""
    engine = create_engine(
        url.set(drivername="sqlite"),
        connect_args={
            "isolation_level": None,
            "check_same_thread": False,
            "timeout": BUSY_TIMEOUT_S if waits else 0.0,
        },
        poolclass=StaticPool,
        # Every user ends its own transactions: the pool's extra ROLLBACK on check-in would be wasted.
        pool_reset_on_return=None,
    )

    def connect(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        on_connect(dbapi_connection, record)
        for pragma in pragmas:
            dbapi_connection.execute(pragma).close()

    event.listen(engine, "connect", connect)
    return engine

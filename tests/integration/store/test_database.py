"""The shared database: the ping /readyz asks, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from bot.store import Store
from tests.integration.store.conftest import sqlite_url


async def test_ping(store: Store) -> None:
    assert await store.database.ping() is True


async def test_ping_false_when_database_unusable(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    broken = await Store.open(sqlite_url(tmp_path))  # a directory is no database
    try:
        assert await broken.database.ping() is False
    finally:
        await broken.close()
    # aiosqlite stops the worker thread of a failed connect without awaiting it; let it finish while
    # this test's event loop still runs, or it reports to a closed loop during the next test.
    for thread in set(threading.enumerate()) - threads_before:
        await asyncio.to_thread(thread.join, 5)

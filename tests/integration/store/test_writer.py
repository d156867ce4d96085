"""The SQLite writer on a real file: queued writes share a transaction, a failing one fails alone; writes
run on the event loop while the lock is free, on the writer thread while another connection holds it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.store.db import create_engine, sqlite_writer
from bot.store.writer import SqliteWriter
from tests.integration.store.conftest import sqlite_url


@pytest.fixture
async def writer(sqlite_file: Path) -> AsyncIterator[SqliteWriter]:
    sqlite_file.parent.mkdir(parents=True)
    engine = create_engine(sqlite_url(sqlite_file))
    made = sqlite_writer(engine)
    await made.run(lambda conn: conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")))
    yield made
    await made.aclose()
    await engine.dispose()


def insert(value: str) -> Callable[[Connection], int]:
    def op(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    return op


async def values(writer: SqliteWriter) -> list[str]:
    return await writer.run(lambda conn: [row.v for row in conn.execute(text("SELECT v FROM t ORDER BY id"))])


async def test_queued_writes_share_commits_in_queue_order(writer: SqliteWriter) -> None:
    commits = 0

    def count(_conn: object) -> None:
        nonlocal commits
        commits += 1

    for engine in (writer.engine, writer.loop_engine):
        event.listen(engine, "commit", count)
    results = await asyncio.gather(*(writer.run(insert(f"v{n}")) for n in range(100)))
    assert results == list(range(1, 101))  # run in the order they were queued
    assert commits < 100  # queued together, committed together
    assert await values(writer) == [f"v{n}" for n in range(100)]


async def test_a_failing_write_fails_alone_and_the_rest_of_its_batch_commits(writer: SqliteWriter) -> None:
    await writer.run(insert("taken"))

    def half_then_fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t (v) VALUES ('half')"))
        conn.execute(text("INSERT INTO t (v) VALUES ('taken')"))  # violates UNIQUE

    ops = [insert(f"a{n}") for n in range(20)] + [half_then_fail] + [insert(f"b{n}") for n in range(20)]
    results = await asyncio.gather(*(writer.run(op) for op in ops), return_exceptions=True)
    assert [type(r) for r in results].count(IntegrityError) == 1 and isinstance(results[20], IntegrityError)
    stored = await values(writer)
    assert "half" not in stored  # the failed write left nothing behind
    assert stored == ["taken", *(f"a{n}" for n in range(20)), *(f"b{n}" for n in range(20))]


async def test_a_write_after_a_failed_batch_works(writer: SqliteWriter) -> None:
    with pytest.raises(IntegrityError):
        await asyncio.gather(writer.run(insert("x")), writer.run(insert("x")))
    assert await values(writer) == ["x"]
    assert await writer.run(insert("y")) == 2


def on_thread(conn: Connection) -> str:
    conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": threading.current_thread().name})
    return threading.current_thread().name


async def test_writes_run_on_the_event_loop_and_bulk_writes_on_the_thread(writer: SqliteWriter) -> None:
    assert await writer.run(on_thread) == threading.current_thread().name
    assert (await writer.run(on_thread, bulk=True)).startswith("gembot-sqlite-writer")


async def test_a_write_waits_on_the_thread_while_another_connection_holds_the_lock(
    writer: SqliteWriter, sqlite_file: Path
) -> None:
    other = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction
    other.execute("INSERT INTO t (v) VALUES ('other')")
    waiting = asyncio.ensure_future(writer.run(on_thread))
    ticks = 0
    while ticks < 20:  # the event loop is not held while the write waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert not waiting.done()
    other.execute("COMMIT")
    other.close()
    ran_on = await waiting
    assert ran_on.startswith("gembot-sqlite-writer")
    assert await values(writer) == ["other", ran_on]  # after the other transaction, not instead of it
    assert await writer.run(on_thread) == threading.current_thread().name  # the lock is free again


async def test_the_loops_writes_reach_the_database_file_through_checkpoints(
    writer: SqliteWriter, sqlite_file: Path
) -> None:
    await writer.run(insert("first"))
    marker = "checkpointed-marker-7d1f"
    await writer.run(insert(marker))
    deadline = time.monotonic() + 10
    while marker.encode() not in sqlite_file.read_bytes():  # noqa: ASYNC240 - a small test file
        assert time.monotonic() < deadline, "the WAL was never copied into the database file"
        await asyncio.sleep(0.2)
        await writer.run(insert(f"later {time.monotonic()}"))  # writes go on; a checkpoint follows them


async def test_an_at_once_write_commits_before_the_loop_turns(writer: SqliteWriter) -> None:
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    waiting = asyncio.ensure_future(other())  # ready to run at the loop's next turn
    assert await writer.run(insert("now"), at_once=True) == 1
    assert ran == []  # committed without giving the loop a turn
    await waiting
    assert await values(writer) == ["now"]


async def test_an_at_once_write_queues_behind_the_writes_already_waiting(writer: SqliteWriter) -> None:
    first = asyncio.ensure_future(writer.run(insert("first")))
    await asyncio.sleep(0)  # queued; its batch runs at the loop's next turn
    assert await writer.run(insert("second"), at_once=True) == 2
    assert await first == 1
    assert await values(writer) == ["first", "second"]

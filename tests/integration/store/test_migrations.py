"""Schema migrations and connection settings."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bot.store import create_engine, read_only, upgrade_to_head
from bot.store.models import Base
from tests.integration.store.conftest import sqlite_url

HEAD = "0007"  # the newest migration
EXPECTED_TABLES = {
    "alembic_version",
    "answer_messages",
    "audit",
    "blocked_users",
    "chat_settings",
    "conversations",
    "inbox",
    "llm_calls",
    "media",
    "media_deletions",
    "quota_counters",
    "turns",
    "user_usage",
    "users",
    "votes",
}


def _schema(conn: Connection) -> tuple[set[str], str | None, list[Any]]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return (
        set(inspect(conn).get_table_names()),
        context.get_current_revision(),
        compare_metadata(context, Base.metadata),
    )


async def _inspect(url: str) -> tuple[set[str], str | None, list[Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await engine.dispose()


async def test_upgrade_creates_schema_matching_models_and_is_idempotent(store_url: str) -> None:
    await upgrade_to_head(store_url)
    tables, revision, diff = await _inspect(store_url)
    assert tables == EXPECTED_TABLES
    assert revision == HEAD
    assert diff == []

    await upgrade_to_head(store_url)
    assert await _inspect(store_url) == (EXPECTED_TABLES, HEAD, [])


async def test_concurrent_upgrades_on_one_file(sqlite_file: Path) -> None:
    # Separate engines hold separate connections: for SQLite's locks this is what two processes do.
    url = sqlite_url(sqlite_file)
    await asyncio.gather(*(upgrade_to_head(url) for _ in range(4)))
    assert await _inspect(url) == (EXPECTED_TABLES, HEAD, [])


async def test_parent_directory_is_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "gembot.db"
    await upgrade_to_head(sqlite_url(target))
    assert target.is_file()


async def test_pragmas_on_every_pooled_connection(sqlite_file: Path) -> None:
    url = sqlite_url(sqlite_file)
    await upgrade_to_head(url)
    engine = create_engine(url)
    try:
        async with AsyncExitStack() as stack:
            # Held open together, so each is a distinct pooled DBAPI connection; read-only ones, as
            # four write transactions held by one task would wait on each other.
            conns = [await stack.enter_async_context(read_only(engine).connect()) for _ in range(4)]
            for conn in conns:
                values = {
                    name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                    for name in (
                        "journal_mode",
                        "synchronous",
                        "foreign_keys",
                        "busy_timeout",
                        "secure_delete",
                    )
                }
                assert values == {
                    "journal_mode": "wal",
                    "synchronous": 1,
                    "foreign_keys": 1,
                    "busy_timeout": 30000,
                    "secure_delete": 1,
                }
            raw_ids = {id((await conn.get_raw_connection()).driver_connection) for conn in conns}
            assert len(raw_ids) == 4
    finally:
        await engine.dispose()


async def test_sqlite_transactions_begin_immediate_and_reads_deferred(sqlite_file: Path) -> None:
    """A write transaction holds the write lock from BEGIN; a read-only one does not."""
    url = sqlite_url(sqlite_file)
    await upgrade_to_head(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as writer:
            await writer.execute(text("SELECT 1"))  # starts the transaction: BEGIN IMMEDIATE
            probe = create_engine(url)
            try:
                async with probe.connect() as other:
                    raw = (await other.get_raw_connection()).driver_connection
                    assert raw is not None
                    await raw.execute("PRAGMA busy_timeout=0")
                    try:
                        await raw.execute("BEGIN IMMEDIATE")
                    except Exception as exc:
                        assert "locked" in str(exc)
                    else:
                        raise AssertionError("a second writer got the lock while the first held it")
            finally:
                await probe.dispose()
            async with read_only(engine).connect() as reader:
                # Readers are not blocked by the writer in WAL mode.
                assert (await reader.execute(text("SELECT count(*) FROM turns"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_two_processes_upgrade_at_once(store_url: str) -> None:
    code = "; ".join(
        [
            "import asyncio, sys",
            "from bot.store import upgrade_to_head",
            "asyncio.run(upgrade_to_head(sys.argv[1]))",
        ]
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, store_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
    assert await _inspect(store_url) == (EXPECTED_TABLES, HEAD, [])

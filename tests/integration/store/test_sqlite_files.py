"""SQLite file-level guarantees: erased text is gone from the files, new files are private, index-friendly
history."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.copydb import copy_database
from bot.store import Store, upgrade_to_head

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def file_bytes(db: Path) -> bytes:
    """The database file and its WAL and shared-memory companions, concatenated."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


def wal_size(db: Path) -> int:
    """Size of the WAL file (0 when absent)."""
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def save(
    store: Store, conversation_id: int, user_id: str, user_text: str, model_text: str, at: datetime
) -> None:
    await store.conversations.save_exchange(
        conversation_id=conversation_id,
        user_id=user_id,
        user_text=user_text,
        model_text=model_text,
        prompt_tokens=1,
        output_tokens=1,
        finish_reason="STOP",
        model="m",
        now=at,
    )


async def test_purged_text_is_not_in_the_files(sqlite_store: Store, sqlite_file: Path) -> None:
    marker = f"PURGE-ME-{uuid.uuid4().hex}"
    keep = f"KEEP-ME-{uuid.uuid4().hex}"
    conv = await sqlite_store.conversations.open_conversation("telegram", "1", "", T0)
    for n in range(20):
        # Short and long (overflow-page) texts both.
        body = f"{marker} {n} " + ("x" * 9000 if n % 2 else "")
        await save(sqlite_store, conv, "u1", body, f"reply {marker} {n}", T0)
    await save(sqlite_store, conv, "u1", keep, keep, T0 + timedelta(days=2))
    assert marker.encode() in file_bytes(sqlite_file)  # the check below would otherwise prove nothing

    counts = await sqlite_store.retention.purge(
        turns_before=T0 + timedelta(days=1), inbox_before=T0, audit_before=T0, calls_before=T0
    )

    assert counts["turns"] == 20
    data = file_bytes(sqlite_file)
    assert marker.encode() not in data
    assert keep.encode() in data
    assert wal_size(sqlite_file) == 0  # checkpointed and truncated


async def test_forgotten_text_is_not_in_the_files(sqlite_store: Store, sqlite_file: Path) -> None:
    marker = f"FORGET-ME-{uuid.uuid4().hex}"
    other = f"OTHER-USER-{uuid.uuid4().hex}"
    a = await sqlite_store.conversations.open_conversation("telegram", "1", "", T0)
    b = await sqlite_store.conversations.open_conversation("telegram", "2", "", T0)
    await save(sqlite_store, a, "42", f"{marker} a", "ok", T0)
    await save(sqlite_store, b, "42", f"{marker} b" + "y" * 6000, "ok", T0)
    await save(sqlite_store, b, "43", other, "ok", T0)
    assert marker.encode() in file_bytes(sqlite_file)

    assert await sqlite_store.users.forget_user("telegram", "42", T0) == 2

    data = file_bytes(sqlite_file)
    assert marker.encode() not in data
    assert other.encode() in data


async def test_history_query_uses_the_index(sqlite_store: Store) -> None:
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM turns" in statement:
            captured.append((statement, parameters))

    # Every engine: the history is read by the store's reader, which has an engine of its own.
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        await sqlite_store.conversations.history(1, limit=10, since=T0)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    ((statement, parameters),) = captured
    async with sqlite_store.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        cursor = await raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plan = await cursor.fetchall()
        await cursor.close()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "ix_turns_conversation_id_created_at" in details
    assert "TEMP B-TREE" not in details  # no sort of the conversation's rows


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are created world-readable unless asked otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_022")
async def test_a_new_database_and_its_folders_are_private_to_the_owner(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # like /tmp: an existing folder is not gembot's to change
    db = shared / "gembot" / "data" / "gembot.db"
    await upgrade_to_head(f"sqlite+aiosqlite:///{db}")
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        await store.inbox.claim_event("telegram", "e1", "u1", T0)
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        await store.close()
    assert (mode(shared / "gembot"), mode(db.parent)) == (0o700, 0o700)
    assert mode(shared) == 0o1777


@pytest.mark.usefixtures("umask_022")
async def test_copy_db_creates_its_sqlite_target_private(tmp_path: Path, sqlite_store: Store) -> None:
    source = str(sqlite_store.engine.url)
    target = tmp_path / "copy" / "gembot.db"
    await copy_database(source, f"sqlite+aiosqlite:///{target}")
    assert (mode(target), mode(target.parent)) == (0o600, 0o700)


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "gembot.db"
    db.touch(mode=0o640)
    db.chmod(0o640)  # e.g. readable by a backup group on purpose
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    await store.close()
    assert mode(db) == 0o640

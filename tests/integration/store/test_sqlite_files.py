"""SQLite file-level guarantees: erased text is gone from the files, index-friendly history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.store import Store

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

    event.listen(sqlite_store.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await sqlite_store.conversations.history(1, limit=10, since=T0)
    finally:
        event.remove(sqlite_store.engine.sync_engine, "before_cursor_execute", capture)
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

"""Memory: RSS of ``gembot run`` with 1,000 and with 100,000 stored conversations, 1,000 of them active.

The stored conversations are written straight into a migrated SQLite database with SQL (a user, two turns
of about 150 characters each and their inbox rows, all within the retention window); then 1,000 users each
send one message (all at once) through the Telegram emulator and VmRSS / VmHWM are read from /proc/PID/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchTelegram,
    Users,
    gembot_config,
    memory_kb,
    migrate,
    start_gembot,
    stop,
    wait_until,
    write_config,
)

ACTIVE = 1_000
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a naive UTC DateTime on SQLite


def seed(db: Path, conversations: int, first_chat: int) -> float:
    """Insert ``conversations`` idle conversations with their users, turns and inbox rows; returns seconds."""
    started = time.perf_counter()
    rng = random.Random(7)
    now = datetime.now(UTC).replace(tzinfo=None)
    user_text = "How do I keep a sourdough starter alive while I am away for two weeks? " * 2
    model_text = "Feed it, refrigerate it, and give it two feedings at room temperature on return. " * 2
    conn = sqlite3.connect(db)
    with contextlib.closing(conn), conn:
        batch = 5_000
        for start in range(0, conversations, batch):
            ids = range(first_chat + start, first_chat + min(start + batch, conversations))
            stamps = {i: (now - timedelta(minutes=rng.randint(5, 20 * 60))).strftime(_FORMAT) for i in ids}
            conn.executemany(
                "INSERT INTO conversations (platform, chat_key, thread_key, created_at, last_active_at) "
                "VALUES ('telegram', ?, '', ?, ?)",
                [(str(i), stamps[i], stamps[i]) for i in ids],
            )
            conn.executemany(
                "INSERT INTO users (platform, user_id, language, first_seen_at, last_seen_at) "
                "VALUES ('telegram', ?, 'en', ?, ?)",
                [(str(i), stamps[i], stamps[i]) for i in ids],
            )
            conv_ids = dict(
                conn.execute(
                    "SELECT CAST(chat_key AS INTEGER), id FROM conversations WHERE platform = 'telegram' "
                    "AND CAST(chat_key AS INTEGER) BETWEEN ? AND ?",
                    (ids.start, ids.stop - 1),
                ).fetchall()
            )
            turns = []
            inbox = []
            for i in ids:
                for k in range(2):
                    turns.append(
                        (
                            conv_ids[i],
                            str(i),
                            user_text,
                            model_text,
                            40,
                            40,
                            "STOP",
                            "gemini-2.5-flash",
                            stamps[i],
                        )
                    )
                    inbox.append((f"{i}:{k + 1}", conv_ids[i], str(i), stamps[i], stamps[i]))
            conn.executemany(
                "INSERT INTO turns (conversation_id, user_id, user_text, model_text, prompt_tokens, "
                "output_tokens, finish_reason, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                turns,
            )
            conn.executemany(
                "INSERT INTO inbox (platform, event_id, conversation_id, user_id, status, received_at, "
                "answered_at) VALUES ('telegram', ?, ?, ?, 'answered', ?, ?)",
                inbox,
            )
    return time.perf_counter() - started


async def run_one(workdir: Path, gemini_url: str, stored: int, repeat: int = 0) -> dict[str, Any]:
    """RSS with ``stored`` conversations in the database, ``ACTIVE`` of them talking."""
    directory = workdir / f"memory-{stored}-{repeat}"
    db = directory / "gembot.db"
    async with BenchTelegram() as tg:
        # A config for the migration first (the same database), then the seed, then the bot.
        write_config(directory, gembot_config(db, gemini_url, tg.base_url, 0))
        await migrate(directory)
        seconds = await asyncio.to_thread(seed, db, stored - ACTIVE, 90_000_000)
        proc = await start_gembot(directory, gemini_url, tg.base_url, db=db)
        try:
            at_start = memory_kb(proc.pid)
            users = Users(tg, 7_000_000, ACTIVE)
            for i in range(ACTIVE):
                users.send(i, f"what is the capital of country number {i}?")
            if not await wait_until(lambda: tg.answers >= ACTIVE, 120):
                raise RuntimeError(f"memory: {ACTIVE - tg.answers} not answered:\n{proc.log_tail()}")
            await asyncio.sleep(1.0)
            after = memory_kb(proc.pid)
        finally:
            await stop(proc)
    size_mb = sum(p.stat().st_size for p in directory.glob("gembot.db*")) / 2**20
    return {
        "stored": stored,
        "active": ACTIVE,
        "seed_s": seconds,
        "db_mb": size_mb,
        "rss_start_mb": at_start["VmRSS"] / 1024,
        "rss_mb": after["VmRSS"] / 1024,
        "hwm_mb": after["VmHWM"] / 1024,
    }

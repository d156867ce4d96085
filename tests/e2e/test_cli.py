"""The other subcommands as processes: migrate, purge, stats, and run without a platform."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.e2e.test_console import gembot, write_config
from tests.fakes.gemini import GeminiEmulator

pytestmark = pytest.mark.e2e
ENV = {"GEMINI_API_KEY": API_KEY}


async def test_migrate_creates_the_schema_and_is_idempotent(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    for _ in range(2):
        status, out, err = await gembot("migrate", "--config", str(config), env=ENV)
        assert status == 0, err
        assert "up to date" in out
    with sqlite3.connect(tmp_path / "data" / "gembot.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"conversations", "turns", "inbox", "llm_calls", "users", "audit"} <= tables


async def test_stats_and_purge_after_a_conversation(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    status, _, err = await gembot("console", "--config", str(config), stdin=b"one\ntwo\n", env=ENV)
    assert status == 0, err
    status, out, err = await gembot("stats", "--config", str(config), env={**ENV, "LANG": "C"})
    assert status == 0, err
    assert "Gemini requests 2, success 100.0%" in out
    status, out, err = await gembot("purge", "--config", str(config), env=ENV)
    assert status == 0, err
    assert out.startswith("purged: ")
    with sqlite3.connect(tmp_path / "data" / "gembot.db") as db:
        assert db.execute("SELECT count(*) FROM turns").fetchone() == (2,)  # younger than the retention


async def test_run_without_a_platform_and_without_a_terminal_exits_2(
    gemini: GeminiEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gemini.base_url)
    status, _out, err = await gembot("run", "--config", str(config), env=ENV)
    assert status == 2
    assert "no platform is enabled" in err
    assert "Traceback" not in err


async def test_an_unreachable_database_is_one_line_without_the_password(
    gemini: GeminiEmulator, tmp_path: Path
) -> None:
    unreachable = "postgresql+asyncpg://gembot:pa55word@127.0.0.1:9/gembot"  # nothing listens on port 9
    config = write_config(tmp_path, gemini.base_url, storage={"url": unreachable})
    status, _out, err = await gembot("migrate", "--config", str(config), env=ENV)
    assert status == 1
    assert err.startswith("gembot: migrate failed: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "pa55word" not in err

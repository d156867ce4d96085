"""``gembot copy-db``: a SQLite deployment moved to PostgreSQL keeps its history, quota and inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import App
from bot.cli import main
from bot.config import settings_from_mapping
from tests.conftest import base_config, deep_merge
from tests.fakes.gemini import GeminiEmulator
from tests.helpers import answer_text, collect, incoming
from tests.services import query_rows_on


async def test_copy_from_sqlite_to_postgresql_then_continue_there(
    pg_url: str, gemini: GeminiEmulator, tmp_path: Path
) -> None:
    sqlite_path = tmp_path / "data" / "gembot.db"
    config = base_config(sqlite_path, gemini.base_url)
    old = await App.create(settings_from_mapping(config, env={}))
    for text in ("one", "two"):
        answer_text(await collect(old, incoming(text, chat="kept", event_id=f"e-{text}")))
    answer_text(await collect(old, incoming("elsewhere", chat="other")))
    await old.aclose()

    source = f"sqlite+aiosqlite:///{sqlite_path}"
    assert await asyncio.to_thread(main, ["copy-db", "--from", source, "--to", pg_url]) == 0
    # Copying again would duplicate everything: refused, exit 2.
    assert await asyncio.to_thread(main, ["copy-db", "--from", source, "--to", pg_url]) == 2

    rows = query_rows_on(pg_url)
    assert rows("SELECT count(*) FROM turns") == [(3,)]
    assert rows("SELECT count(*) FROM inbox") == [(3,)]
    new = await App.create(settings_from_mapping(deep_merge(config, {"storage": {"url": pg_url}}), env={}))
    try:
        # The history came along (context), the inbox too (a redelivered event stays answered once),
        # and new rows get fresh ids after the copied ones.
        assert await collect(new, incoming("one", chat="kept", event_id="e-one")) == []
        answer_text(await collect(new, incoming("three", chat="kept")))
        assert gemini.user_texts(-1) == ["one", "two", "three"]
        answer_text(await collect(new, incoming("new chat", chat="fresh")))
    finally:
        await new.aclose()
    assert rows("SELECT count(*) FROM turns") == [(5,)]


async def test_a_mistyped_source_or_unreachable_target_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def copy(source: Path, target: str) -> int:
        return main(["copy-db", "--from", f"sqlite+aiosqlite:///{source}", "--to", target])

    missing = tmp_path / "typo" / "gembot.db"
    assert await asyncio.to_thread(copy, missing, f"sqlite+aiosqlite:///{tmp_path / 'target.db'}") == 2
    assert not missing.parent.exists()  # nothing created for the typo: no empty database "copied"
    assert "the source database file" in capsys.readouterr().err

    source = tmp_path / "source.db"
    source.touch()
    unreachable = "postgresql+asyncpg://gembot@127.0.0.1:9/gembot"  # nothing listens on port 9
    assert await asyncio.to_thread(copy, source, unreachable) == 2
    err = capsys.readouterr().err
    assert err.startswith("gembot: copy-db: cannot open the target database") and "Traceback" not in err

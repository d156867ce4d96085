"""Privacy promises checked where they matter: in the database files, the audit table and the logs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.domain import NoticeKind, Platform
from bot.store import AuditRecord
from tests.conftest import API_KEY
from tests.e2e.test_console import gembot, write_config
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply, Reply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming, notice_kind, terminal

AppFactory = Callable[..., Any]


def file_bytes(db_path: Path) -> bytes:
    """The database file and its WAL/shm companions, as they are on disk."""
    return b"".join(
        p.read_bytes()
        for p in (db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm"))
        if p.exists()
    )


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


async def test_purge_removes_old_text_from_the_database_files(
    make_settings: Any, gemini: Emulator, db_path: Path
) -> None:
    clock = FakeClock()
    app = await App.create(make_settings(storage={"retention": "1h"}), clock=clock)
    try:
        for i in range(30):
            await collect(app, incoming(f"OLDSECRETTEXT-{i} " + "x" * 200, chat=f"c{i % 3}"))
        clock.advance(timedelta(hours=2))
        await collect(app, incoming("FRESHTEXT stays"))
        assert b"OLDSECRETTEXT" in file_bytes(db_path)  # the check below can see text when it is there
        removed = await app.purge()
        assert removed["turns"] == 30
        assert removed["inbox_targets"] == 30  # where to reply is forgotten with the text
        assert removed["inbox"] == 0  # the rows (no text) stay for /stats until stats_retention
        clock.advance(timedelta(days=36))
        assert (await app.purge())["inbox"] == 31
    finally:
        await app.aclose()
    assert b"OLDSECRETTEXT" not in file_bytes(db_path)
    assert rows(db_path, "SELECT user_text FROM turns") == []
    assert rows(db_path, "SELECT count(*) FROM inbox") == [(0,)]


async def test_gembot_purge_command_deletes_text_older_than_retention(
    make_settings: Any, gemini: Emulator, db_path: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    clock.current = clock.current.replace(year=2020)  # long past: older than any retention, today
    app = await App.create(make_settings(), clock=clock)
    try:
        for i in range(5):
            await collect(app, incoming(f"ANCIENTTEXT-{i}"))
    finally:
        await app.aclose()
    config = write_config(
        tmp_path, gemini.base_url, storage={"url": f"sqlite+aiosqlite:///{db_path}", "retention": "24h"}
    )
    status, out, err = await gembot("purge", "--config", str(config), env={"GEMINI_API_KEY": API_KEY})
    assert status == 0, err
    assert "turns 5" in out
    assert b"ANCIENTTEXT" not in file_bytes(db_path)


async def test_statistics_and_inbox_rows_hold_no_text(
    app_factory: AppFactory, gemini: Emulator, db_path: Path
) -> None:
    app: App = await app_factory()
    answer_text(await collect(app, incoming("STATSPROBE text")))
    for table in ("llm_calls", "inbox", "audit", "users", "conversations"):
        assert "STATSPROBE" not in repr(rows(db_path, f"SELECT * FROM {table}")), table


async def test_forget_erases_every_exchange_the_sender_started_everywhere(
    app_factory: AppFactory, gemini: Emulator, db_path: Path
) -> None:
    app: App = await app_factory()
    answer_text(await collect(app, incoming("FORGETME-private", chat="dm")))
    answer_text(await collect(app, incoming("FORGETME-group", chat="g", private=False, name="Ann")))
    answer_text(await collect(app, incoming("FORGETME-thread", chat="g", thread="t1", private=False)))
    answer_text(await collect(app, incoming("KEEP-other-user", chat="g", user="user-2", private=False)))
    answer_text(await collect(app, incoming("KEEP-other-platform", platform=Platform.SLACK, chat="D1")))
    done = terminal(await collect(app, incoming(command="forget", chat="dm")))
    assert done.kind is NoticeKind.INFO
    assert "3" in done.text
    texts = sorted(r[0] for r in rows(db_path, "SELECT user_text FROM turns"))
    assert texts == ["KEEP-other-platform", "KEEP-other-user"]
    assert rows(db_path, "SELECT count(*) FROM inbox WHERE platform='telegram' AND user_id='user-1'") == [
        (0,)
    ]
    assert b"FORGETME" not in file_bytes(db_path)
    audit = rows(db_path, "SELECT action, params FROM audit WHERE action = 'command.forget'")
    assert len(audit) == 1
    assert json.loads(audit[0][1])["exchanges"] == 3
    # Context is gone too: the next message in the group thread starts afresh.
    answer_text(await collect(app, incoming("again", chat="g", thread="t1", private=False)))
    assert gemini.user_texts(-1) == ["again"]


async def test_audit_rows_record_gemini_calls_and_admin_commands_without_text(
    app_factory: AppFactory, gemini: Emulator, db_path: Path
) -> None:
    app: App = await app_factory(telegram={"admin_ids": [42]})
    answer_text(await collect(app, incoming("AUDITPROBE hello there", user="42")))
    assert notice_kind(await collect(app, incoming(command="stats", user="42"))) is NoticeKind.INFO
    assert (
        notice_kind(await collect(app, incoming(command="reset", user="42", chat="g", private=False)))
        is NoticeKind.INFO
    )
    audit = rows(db_path, "SELECT platform, actor_id, action, model, params FROM audit ORDER BY id")
    assert [a[2] for a in audit] == ["gemini.generate", "command.stats", "command.reset"]
    assert all(a[0] == "telegram" and a[1] == "42" for a in audit)
    assert audit[0][3] == "gemini-2.5-flash"
    params = json.loads(audit[0][4])
    assert params["text_chars"] == len("AUDITPROBE hello there")
    assert "AUDITPROBE" not in repr(audit)


@pytest.mark.e2e
async def test_a_full_console_run_leaks_no_secret_to_logs_audit_or_database(
    gemini: Emulator, tmp_path: Path
) -> None:
    secrets = {
        "GEMINI_API_KEY": API_KEY,
        "TELEGRAM_BOT_TOKEN": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",
        "SLACK_BOT_TOKEN": "xoxb-0000000000-1111111111-secretslacktoken",
        "SLACK_APP_TOKEN": "xapp-1-A000-0000-secretapptoken",
        "SLACK_SIGNING_SECRET": "f00dfeedsigningsecret1234",
    }
    config = write_config(
        tmp_path,
        gemini.base_url,
        telegram={"enabled": False, "token": "${TELEGRAM_BOT_TOKEN}"},
        slack={
            "enabled": False,
            "bot_token": "${SLACK_BOT_TOKEN}",
            "app_token": "${SLACK_APP_TOKEN}",
            "signing_secret": "${SLACK_SIGNING_SECRET}",
        },
        logging={"level": "DEBUG", "format": "json"},
        filter={"words": ["badword"]},
    )
    gemini.script(
        Reply(),
        ErrorReply.bad_request(f"Invalid value for key {API_KEY} at contents[0]"),
        Reply(text="Mail me at someone@example.com"),
    )
    lines = "hello\nplease fail\nsecond\n/stats\n/help\nbadword\n/forget\n/reset\nthird\n"
    status, out, err = await gembot(
        "console", "--verbose", "--config", str(config), stdin=lines.encode(), env=secrets
    )
    assert status == 0, err
    assert "message.handled" in err  # the logs were written, so the check below means something
    db_path = tmp_path / "data" / "gembot.db"
    stored = file_bytes(db_path)
    audit = repr(rows(db_path, "SELECT * FROM audit"))
    assert "gemini.generate" in audit and "command.forget" in audit
    for name, value in secrets.items():
        assert value not in err, f"{name} in the logs"
        assert value.encode() not in stored, f"{name} in the database"
        assert value not in audit, f"{name} in the audit rows"
        assert value not in out, f"{name} on stdout"


async def test_audit_params_are_masked_at_the_store(app_factory: AppFactory, db_path: Path) -> None:
    app: App = await app_factory()
    await app.store.records.record_audit(
        [
            AuditRecord(
                at=app.clock.now(),
                platform="slack",
                actor_id="U1",
                action="command.test",
                params={
                    "contact": "alice@example.com",
                    "phone": "+1 (415) 555-0134",
                    "token": "xoxb-1234567890-abcdefghijkl",
                    "text_chars": 12345678,
                },
            )
        ]
    )
    params = json.loads(rows(db_path, "SELECT params FROM audit")[0][0])
    assert params == {"contact": "[email]", "phone": "[phone]", "token": "[secret]", "text_chars": 12345678}

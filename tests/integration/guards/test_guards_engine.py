"""Guards through the engine: word filter on input and streamed replies, reload, rate limits, access."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.domain import Delta, FinalAnswer, Notice, NoticeKind, Platform
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.fakes.gemini import Reply
from tests.helpers import answer_text, collect, deltas, incoming, notice_kind, terminal

AppFactory = Callable[..., Any]
REDIS_URL = os.environ.get("GEMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def turn_rows(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT user_text, model_text FROM turns ORDER BY id").fetchall()


# -- word filter --------------------------------------------------------------------------------------


async def test_blocked_message_gets_a_notice_no_gemini_call_and_does_not_count(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(
        filter={"words": ["badword", "坏词"], "action": "block"}, rate_limits={"per_user": "1/minute"}
    )
    for text in ("this is a Ｂ.Ａ.Ｄ.ｗｏｒｄ", "壞 詞"):
        assert notice_kind(await collect(app, incoming(text))) is NoticeKind.FILTERED
    assert gemini.requests == []
    answer_text(await collect(app, incoming("harmless")))  # the refused ones did not use the allowance


async def test_masked_message_goes_to_gemini_masked_and_is_stored_masked(
    app_factory: AppFactory, gemini: Emulator, db_path: Path
) -> None:
    app: App = await app_factory(filter={"words": ["badword"], "action": "mask", "check_replies": False})
    reply = answer_text(await collect(app, incoming("say b-a-d-w-o-r-d twice")))
    assert gemini.user_texts(-1) == ["say ************* twice"]
    assert reply == "echo: say ************* twice"
    assert turn_rows(db_path) == [("say ************* twice", "echo: say ************* twice")]


@pytest.mark.parametrize("word", ["badword", "坏词"])
async def test_streamed_reply_never_shows_a_listed_word_and_is_withheld(
    app_factory: AppFactory, gemini: Emulator, db_path: Path, word: str
) -> None:
    app: App = await app_factory(filter={"words": [word], "action": "block"})
    head, tail = word[:3], word[3:]
    gemini.script(Reply(chunks=["Sure, here it is: ", head, tail, " and some more words after it."]))
    events = await collect(app, incoming("tell me"))
    shown = deltas(events)
    assert word not in shown
    assert head not in shown  # the start of the word was held back, not shown and then regretted
    assert notice_kind(events) is NoticeKind.FILTERED
    assert turn_rows(db_path) == []


async def test_streamed_reply_is_masked_while_it_streams(
    app_factory: AppFactory, gemini: Emulator, db_path: Path
) -> None:
    app: App = await app_factory(filter={"words": ["badword"], "action": "mask"})
    gemini.script(Reply(chunks=["Sure: B", "AD", "WO", "rd, then a long tail of text", " that ends."]))
    events = await collect(app, incoming("tell me"))
    shown = deltas(events)
    assert "BAD" not in shown
    assert "*******" in shown
    assert answer_text(events) == "Sure: *******, then a long tail of text that ends."
    assert answer_text(events).startswith(shown)
    assert len([e for e in events if isinstance(e, Delta)]) >= 2
    assert turn_rows(db_path)[0][1] == "Sure: *******, then a long tail of text that ends."


async def test_words_file_change_applies_without_restart_and_without_a_gap(
    app_factory: AppFactory, gemini: Emulator, tmp_path: Path
) -> None:
    words = tmp_path / "words.txt"
    words.write_text("alpha\n", encoding="utf-8")
    app: App = await app_factory(filter={"words_file": str(words), "reload_interval": "20ms"})
    assert app.text_filter is not None
    text_filter = app.text_filter
    stop = asyncio.Event()
    misses = 0

    async def keep_checking() -> None:
        nonlocal misses
        while not stop.is_set():
            misses += not text_filter.check("alpha").flagged
            await asyncio.sleep(0)

    checker = asyncio.create_task(keep_checking())
    words.write_text("alpha\nbeta\n" + "\n".join(f"w{i}" for i in range(20_000)), encoding="utf-8")
    os.utime(words, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    deadline = time.monotonic() + 5
    while not text_filter.check("beta").flagged:
        assert time.monotonic() < deadline, "the changed words file was not picked up"
        await asyncio.sleep(0.02)
    stop.set()
    await checker
    assert misses == 0  # the old list served until the new one was in force
    assert notice_kind(await collect(app, incoming("beta"))) is NoticeKind.FILTERED
    assert gemini.requests == []


# -- rate limits ------------------------------------------------------------------------------------


async def test_message_over_the_user_limit_is_refused_with_retry_time_and_no_gemini_call(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(rate_limits={"per_user": "3/minute", "per_chat": ""})
    for i in range(3):
        answer_text(await collect(app, incoming(f"m{i}")))
    refused = terminal(await collect(app, incoming("one too many")))
    assert refused.kind is NoticeKind.RATE_LIMITED
    assert "try again in" in refused.text
    assert any(unit in refused.text for unit in ("second", "minute"))
    assert len(gemini.requests) == 3
    assert notice_kind(await collect(app, incoming(command="help"))) is NoticeKind.INFO  # commands pass
    assert len(gemini.requests) == 3


async def test_chat_limit_and_refused_messages_do_not_count(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(rate_limits={"per_user": "2/minute", "per_chat": "3/minute"})

    def group(text: str, user: str) -> Any:
        return incoming(text, chat="g", user=user, private=False)

    answer_text(await collect(app, group("a1", "alice")))
    answer_text(await collect(app, group("a2", "alice")))
    assert notice_kind(await collect(app, group("a3", "alice"))) is NoticeKind.RATE_LIMITED
    # Alice's refused message did not count against the chat: Bob still gets the chat's third slot.
    answer_text(await collect(app, group("b1", "bob")))
    refused = terminal(await collect(app, group("b2", "bob")))
    assert refused.kind is NoticeKind.RATE_LIMITED
    assert "chat" in refused.text
    assert len(gemini.requests) == 3


async def test_admins_are_exempt(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(
        rate_limits={"per_user": "1/minute", "per_chat": "1/minute"}, slack={"admin_ids": ["UADMIN"]}
    )
    for i in range(3):
        answer_text(await collect(app, incoming(f"a{i}", user="UADMIN", platform=Platform.SLACK)))
    assert len(gemini.requests) == 3


def _redis_unreachable_reason() -> str | None:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2
        ) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return f"Redis at {REDIS_URL} did not answer PING"
    except OSError as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc}"
    return None


@pytest.fixture
def redis_limits() -> dict[str, str]:
    """rate_limits settings on the real Redis with a key prefix of this test's own."""
    reason = _redis_unreachable_reason()
    if reason is not None:
        if os.environ.get("GEMBOT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (GEMBOT_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    return {"storage": REDIS_URL, "key_prefix": f"gembot-test-{uuid.uuid4().hex}"}


@pytest.mark.services
async def test_two_engines_on_one_redis_share_one_limit(
    app_factory: AppFactory, gemini: Emulator, redis_limits: dict[str, str]
) -> None:
    limits = {**redis_limits, "per_user": "3/minute", "per_chat": ""}
    first: App = await app_factory(rate_limits=limits)
    second: App = await app_factory(rate_limits=limits)
    answer_text(await collect(first, incoming("1", chat="c1")))
    answer_text(await collect(second, incoming("2", chat="c2")))
    answer_text(await collect(first, incoming("3", chat="c3")))
    refused = terminal(await collect(second, incoming("4", chat="c4")))
    assert refused.kind is NoticeKind.RATE_LIMITED
    assert "try again in" in refused.text
    assert len(gemini.requests) == 3
    # Another user has an allowance of their own on both replicas.
    answer_text(await collect(second, incoming("x", user="user-2", chat="c5")))


@pytest.mark.services
async def test_concurrent_messages_on_two_engines_never_exceed_the_shared_limit(
    app_factory: AppFactory, gemini: Emulator, redis_limits: dict[str, str]
) -> None:
    limits = {**redis_limits, "per_user": "5/minute", "per_chat": ""}
    apps: list[App] = [await app_factory(rate_limits=limits) for _ in range(2)]
    results = await asyncio.gather(
        *(collect(apps[i % 2], incoming(f"q{i}", chat=f"c{i}")) for i in range(16))
    )
    ends = [terminal(r) for r in results]
    assert sum(isinstance(end, FinalAnswer) for end in ends) == 5
    assert sum(isinstance(end, Notice) and end.kind is NoticeKind.RATE_LIMITED for end in ends) == 11
    assert len(gemini.requests) == 5


@pytest.mark.services
async def test_memory_storage_is_per_process_and_redis_storage_is_shared(
    app_factory: AppFactory, gemini: Emulator, redis_limits: dict[str, str]
) -> None:
    memory = {"per_user": "1/minute", "per_chat": ""}
    one: App = await app_factory(rate_limits=memory)
    two: App = await app_factory(rate_limits=memory)
    answer_text(await collect(one, incoming("a", chat="c1")))
    answer_text(await collect(two, incoming("b", chat="c2")))  # its own counter
    assert one.limiter is not None
    assert await one.limiter.check_storage()
    shared: App = await app_factory(rate_limits={**redis_limits, **memory})
    assert shared.limiter is not None
    assert await shared.limiter.check_storage()


# -- access ---------------------------------------------------------------------------------------


async def test_allow_lists_and_admins_by_id_only(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(
        telegram={"allowed_chat_ids": [100], "admin_ids": [7]},
        slack={"allowed_channel_ids": ["C1"], "admin_ids": ["UA"]},
    )
    tg, sl = Platform.TELEGRAM, Platform.SLACK
    assert (
        notice_kind(await collect(app, incoming("hi", chat="555", platform=tg)))
        is NoticeKind.NOT_ALLOWED_CHAT
    )
    assert await collect(app, incoming("hi", chat="-999", private=False, platform=tg)) == []
    assert await collect(app, incoming("hi", chat="C9", private=False, platform=sl)) == []
    # A display name equal to an admin id grants nothing.
    assert await collect(app, incoming("hi", chat="C9", private=False, platform=sl, name="UA")) == []
    answer_text(await collect(app, incoming("hi", chat="100", platform=tg)))
    answer_text(await collect(app, incoming("hi", chat="C1", private=False, platform=sl)))
    answer_text(await collect(app, incoming("admin", chat="555", user="7", platform=tg)))
    answer_text(await collect(app, incoming("admin", chat="C9", user="UA", private=False, platform=sl)))
    answer_text(await collect(app, incoming("console", chat="tty", platform=Platform.CONSOLE)))
    assert len(gemini.requests) == 5

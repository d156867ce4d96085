"""Votes on answers and answers kept out of history (inline queries), through the real engine and
store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.app import App
from bot.domain import NoticeKind, Platform
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.fakes.gemini import Reply
from tests.helpers import answer_text, collect, incoming, notice_kind
from tests.services import QueryRows

AppFactory = Callable[..., Any]


def inline(text: str, user: str = "7") -> Any:
    return replace(incoming(text, chat=user, user=user, thread="inline"), keep_history=False)


async def test_an_answer_without_history_stores_no_exchange_but_is_audited_and_counted(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory()
    assert (
        answer_text(await collect(app, incoming("remember: blue", chat="7", user="7")))
        == "echo: remember: blue"
    )
    assert answer_text(await collect(app, inline("what colour?"))) == "echo: what colour?"
    # The inline question went alone: no history of the user's private chat, and none of its own kept.
    assert gemini.requests[-1].contents() == [("user", "what colour?")]
    assert query_rows("SELECT user_text FROM turns") == [("remember: blue",)]
    assert query_rows("SELECT count(*) FROM conversations") == [(1,)]
    calls = query_rows("SELECT conversation_id, outcome FROM llm_calls ORDER BY id")
    assert calls[-1] == (None, "ok")
    assert query_rows("SELECT count(*) FROM audit WHERE action = 'gemini.generate'")[0][0] == 2
    statuses = query_rows("SELECT status, chat_key FROM inbox ORDER BY id")
    assert statuses == [("answered", "7"), ("answered", None)]  # nothing to follow up after a crash
    answer_text(await collect(app, incoming("and?", chat="7", user="7")))
    assert [c[0] for c in gemini.requests[-1].contents()] == ["user", "model", "user"]


async def test_an_answer_without_history_meets_the_filter_and_rate_limits(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(
        filter={"words": ["badword"], "action": "block"}, rate_limits={"per_user": "1/minute"}
    )
    assert notice_kind(await collect(app, inline("a badword here"))) is NoticeKind.FILTERED
    answer_text(await collect(app, inline("fine")))
    assert notice_kind(await collect(app, inline("again"))) is NoticeKind.RATE_LIMITED
    assert len(gemini.requests) == 1


async def test_votes_are_one_per_user_and_answer_changeable_and_withdrawable(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory()
    engine = app.engine
    asked = incoming("q", chat="C1", user="U1", platform=Platform.SLACK)
    gemini.script(Reply(text="a"))
    answer_text(await collect(app, asked))
    await engine.answer_shown(asked, ["111.1", "111.2"])

    assert await engine.record_vote(Platform.SLACK, "C1", "111.2", "U1", "down")
    assert await engine.record_vote(Platform.SLACK, "C1", "111.1", "U1", "up")  # the same answer: changed
    assert await engine.record_vote(Platform.SLACK, "C1", "111.1", "U2", "down")
    assert not await engine.record_vote(Platform.SLACK, "C1", "999.9", "U1", "up")  # not an answer
    assert not await engine.record_vote(Platform.SLACK, "C2", "111.1", "U1", "up")  # another channel
    assert not await engine.record_vote(Platform.TELEGRAM, "C1", "111.1", "U1", "up")
    assert sorted(query_rows("SELECT user_id, value FROM votes")) == [("U1", "up"), ("U2", "down")]

    assert await engine.record_vote(Platform.SLACK, "C1", "111.1", "U2", None)  # withdrawn
    assert query_rows("SELECT user_id, value FROM votes") == [("U1", "up")]
    metrics = app.metrics.render().decode()
    assert 'gembot_feedback_total{platform="slack",value="up"} 1.0' in metrics
    assert 'gembot_feedback_total{platform="slack",value="down"} 2.0' in metrics
    assert 'gembot_feedback_total{platform="slack",value="withdrawn"} 1.0' in metrics


async def test_forget_erases_the_votes_of_the_user_and_the_answers_given_to_them(
    app_factory: AppFactory, query_rows: QueryRows
) -> None:
    app: App = await app_factory()
    engine = app.engine
    ann = incoming("q", chat="-100", user="1", private=False)
    ben = incoming("q", chat="-100", user="2", private=False)
    for message, answer_id in ((ann, "10"), (ben, "20")):
        answer_text(await collect(app, message))
        await engine.answer_shown(message, [answer_id])
    await engine.record_vote(Platform.TELEGRAM, "-100", "10", "2", "up")  # Ben on Ann's answer
    await engine.record_vote(Platform.TELEGRAM, "-100", "20", "1", "down")  # Ann on Ben's answer
    await engine.record_vote(Platform.TELEGRAM, "-100", "20", "2", "up")  # Ben on his own

    await collect(app, incoming("", chat="-100", user="1", private=False, command="forget"))
    # Ann's vote is gone, and her answer's message no longer maps to anything; Ben's votes stay.
    assert sorted(query_rows("SELECT user_id, value FROM votes")) == [("2", "up"), ("2", "up")]
    assert query_rows("SELECT message_id FROM answer_messages") == [("20",)]
    assert not await engine.record_vote(Platform.TELEGRAM, "-100", "10", "2", "down")

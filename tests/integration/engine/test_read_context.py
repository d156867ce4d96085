"""Text an adapter read for one message (a thread or channel to summarise): it reaches Gemini with that
message only, passes the word filter, is never stored, and an unreadable one is answered without Gemini."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.app import App
from bot.domain import NoticeKind
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.helpers import answer_text, collect, incoming, terminal
from tests.services import QueryRows

AppFactory = Callable[..., Any]
READ = "Alice: the launch moves to May\nBob: agreed"


async def test_read_text_reaches_gemini_with_its_message_only_and_is_never_stored(
    app_factory: AppFactory, gemini: GeminiEmulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory()
    gemini.script(Reply(text="The launch moves to May."))
    events = await collect(app, replace(incoming("Summarise the messages above."), context_text=READ))
    assert answer_text(events) == "The launch moves to May."
    assert gemini.user_texts(-1) == [f"{READ}\n\nSummarise the messages above."]
    await collect(app, incoming("and then?"))
    assert gemini.contents(-1) == [
        ("user", "Summarise the messages above."),
        ("model", "The launch moves to May."),
        ("user", "and then?"),
    ]
    stored = " ".join(str(cell) for row in query_rows("SELECT * FROM turns") for cell in row)
    assert "launch moves to May" in stored and "Alice" not in stored and "agreed" not in stored


async def test_read_text_goes_through_the_word_filter(
    app_factory: AppFactory, gemini: GeminiEmulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory(filter={"words": ["forbidden"]})
    message = replace(incoming("Summarise."), context_text="Carol: a forbidden plan")
    refused = terminal(await collect(app, message))
    assert refused.kind is NoticeKind.FILTERED
    assert not gemini.requests and query_rows("SELECT * FROM turns") == []

    masked: App = await app_factory(filter={"words": ["forbidden"], "action": "mask"})
    await collect(masked, replace(incoming("Summarise."), context_text="Carol: a forbidden plan"))
    assert "forbidden" not in gemini.user_texts(-1)[0] and "Carol: a" in gemini.user_texts(-1)[0]


async def test_unreadable_context_is_answered_with_its_notice_without_gemini(
    app_factory: AppFactory, gemini: GeminiEmulator
) -> None:
    app: App = await app_factory()
    message = replace(incoming("Summarise."), context_problem="I can't read that channel.")
    notice = terminal(await collect(app, message))
    assert notice.kind is NoticeKind.UNREADABLE and notice.text == "I can't read that channel."
    assert not gemini.requests
    labels = {"platform": "telegram", "outcome": "rejected", "detail": "context_unreadable"}
    assert app.metrics.registry.get_sample_value("gembot_messages_total", labels) == 1

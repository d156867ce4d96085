"""Each chat its own model, persona and switches; per-user token budgets and /usage; through the engine
on a real SQLite file and on PostgreSQL (see conftest.py), against the Gemini emulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.app import App
from bot.domain import NoticeKind, Platform
from tests.conftest import SettingsFactory, deep_merge
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply, Hang, Reply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, eventually, incoming, notice_kind, terminal
from tests.services import QueryRows

AppFactory = Callable[..., Any]
ADMIN = "900"
OPERATOR = "You are a helpful assistant."
PIRATE = "Answer like a pirate."
MODELS = {
    "models": {"allowed": ["gemini-2.5-pro"], "labels": {"gemini-2.5-pro": "Pro"}},
    "personas": {"pirate": {"system_instruction": PIRATE, "temperature": 1.5, "description": "Arr"}},
    "gemini": {"system_instruction": OPERATOR},
    "telegram": {"admin_ids": [int(ADMIN)]},
}
# 12:00 UTC on 3 Dec 2026 is 04:00 in Los Angeles: the day frees at 08:00 UTC on the 4th.
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _system(gemini: Emulator) -> str:
    body = gemini.requests[-1].body
    return "".join(p["text"] for p in body["systemInstruction"]["parts"])


async def test_a_private_chat_switches_model_and_the_next_request_goes_to_it(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(**MODELS)
    listed = terminal(await collect(app, incoming(command="model")))
    assert "▶ gemini-2.5-flash" in listed.text and "• Pro (gemini-2.5-pro)" in listed.text
    unknown = terminal(await collect(app, incoming(command="model", args="gpt-5")))
    assert "no model gpt-5" in unknown.text and "gemini-2.5-pro" in unknown.text
    done = terminal(await collect(app, incoming(command="model", args="gemini-2.5-pro")))
    assert done.kind is NoticeKind.INFO and "Pro (gemini-2.5-pro)" in done.text
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert gemini.requests[-1].path.endswith("/models/gemini-2.5-pro:streamGenerateContent")
    # Another chat keeps the operator's model.
    await collect(app, incoming("there", chat="chat-2"))
    assert gemini.requests[-1].model == "gemini-2.5-flash"


async def test_the_chosen_model_is_followed_by_the_configured_fallbacks(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    fallback = {"gemini": {"fallback_models": ["gemini-2.5-flash-lite"], "retry": {"max_attempts": 1}}}
    app: App = await app_factory(**deep_merge(MODELS, fallback))
    await collect(app, incoming(command="model", args="gemini-2.5-pro"))
    gemini.script(ErrorReply.server_error(500), model="gemini-2.5-pro")
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert [r.model for r in gemini.requests] == ["gemini-2.5-pro", "gemini-2.5-flash-lite"]


async def test_in_a_group_only_admins_change_settings_and_others_are_told_why(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(**MODELS)
    group = {"chat": "-5", "private": False}
    for command, args in (("model", "gemini-2.5-pro"), ("persona", "pirate"), ("settings", "search on")):
        denied = terminal(await collect(app, incoming(command=command, args=args, **group)))
        assert denied.kind is NoticeKind.FORBIDDEN and "Only an admin" in denied.text
    listed = terminal(await collect(app, incoming(command="model", **group)))  # anyone may look
    assert listed.kind is NoticeKind.INFO
    await collect(app, incoming("hi", **group))
    assert gemini.requests[-1].model == "gemini-2.5-flash"
    allowed = await collect(app, incoming(command="model", args="gemini-2.5-pro", user=ADMIN, **group))
    assert notice_kind(allowed) is NoticeKind.INFO
    await collect(app, incoming("again", **group))
    assert gemini.requests[-1].model == "gemini-2.5-pro"


async def test_a_thread_falls_back_to_its_chat_and_may_choose_its_own(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(**MODELS)
    group = {"chat": "-5", "private": False, "user": ADMIN}
    await collect(app, incoming(command="model", args="gemini-2.5-pro", **group))
    await collect(app, incoming("in a topic", thread="7", **group))
    assert gemini.requests[-1].model == "gemini-2.5-pro"
    await collect(app, incoming(command="persona", args="pirate", thread="7", **group))
    await collect(app, incoming("topic again", thread="7", **group))
    assert _system(gemini).endswith(PIRATE) and gemini.requests[-1].model == "gemini-2.5-pro"
    await collect(app, incoming("main chat", **group))
    assert _system(gemini) == OPERATOR


async def test_a_persona_follows_the_operators_instruction(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(**MODELS)
    listed = terminal(await collect(app, incoming(command="persona")))
    assert "• pirate - Arr" in listed.text
    await collect(app, incoming(command="persona", args="pirate"))
    await collect(app, incoming("hi"))
    assert _system(gemini) == f"{OPERATOR}\n\n{PIRATE}"
    assert gemini.requests[-1].body["generationConfig"]["temperature"] == 1.5
    assert "▶ pirate" in terminal(await collect(app, incoming(command="persona"))).text
    await collect(app, incoming(command="persona", args="off"))
    await collect(app, incoming("plain"))
    assert _system(gemini) == OPERATOR
    unknown = terminal(await collect(app, incoming(command="persona", args="ninja")))
    assert "no persona ninja" in unknown.text


async def test_a_custom_persona_goes_through_the_word_filter_and_the_length_limit(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory(**MODELS, filter={"words": ["forbidden"]})
    refused = terminal(await collect(app, incoming(command="persona", args="custom be forbidden")))
    assert refused.kind is NoticeKind.FILTERED and "not allowed" in refused.text
    too_long = terminal(await collect(app, incoming(command="persona", args="custom " + "x" * 2001)))
    assert too_long.kind is NoticeKind.TOO_LONG and "2001" in too_long.text
    assert query_rows("SELECT custom_instruction FROM chat_settings") == []
    done = terminal(await collect(app, incoming(command="persona", args="custom Talk like a poet.")))
    assert done.kind is NoticeKind.INFO
    await collect(app, incoming("hi"))
    assert _system(gemini) == f"{OPERATOR}\n\nTalk like a poet."
    audit = query_rows("SELECT params FROM audit WHERE action = 'command.persona'")
    assert audit and "poet" not in audit[0][0]  # the audit says how long, never what


async def test_settings_show_the_chat_and_store_its_switches(app_factory: AppFactory) -> None:
    app: App = await app_factory(**MODELS)
    shown = terminal(await collect(app, incoming(command="settings"))).text
    assert "model: gemini-2.5-flash" in shown and "persona: none" in shown and "search: default" in shown
    assert "/settings search on|off" in shown
    for args in ("search on", "thoughts off"):
        assert "Done" in terminal(await collect(app, incoming(command="settings", args=args))).text
    wrong = terminal(await collect(app, incoming(command="settings", args="search maybe")))
    assert "search on|off" in wrong.text
    shown = terminal(await collect(app, incoming(command="settings"))).text
    assert "search: on" in shown and "thought summaries: off" in shown
    chinese = terminal(await collect(app, incoming(command="settings", language="zh"))).text
    assert "搜索：开" in chinese and "语言：中文" in chinese
    seen = await app.engine.chat_settings(Platform.TELEGRAM, "chat-1")
    assert seen.search is True and seen.show_thoughts is False and seen.model == "gemini-2.5-flash"


async def test_the_settings_are_read_once_per_message(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(**MODELS)
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM chat_settings" in statement:
            reads.append(statement)

    # Every engine: on SQLite the reads of a message run on the store's reader, an engine of its own.
    event.listen(Engine, "before_cursor_execute", count)
    try:
        await collect(app, incoming("hi", thread="3"))
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert len(reads) == 1


async def test_a_user_over_budget_is_refused_with_when_it_frees_on_two_replicas(
    make_settings: SettingsFactory, gemini: Emulator
) -> None:
    clock = FakeClock(NOON)
    settings = make_settings(budgets={"tokens_per_user_per_day": 100}, telegram={"admin_ids": [int(ADMIN)]})
    first = await App.create(settings, clock=clock)
    second = await App.create(settings, clock=clock, migrate=False)
    try:
        gemini.script(Reply("a", usage={"promptTokenCount": 70, "candidatesTokenCount": 20}))
        gemini.script(Reply("b", usage={"promptTokenCount": 10, "candidatesTokenCount": 5}))
        await collect(first, incoming("one"))
        await collect(second, incoming("two"))  # 90 of 100 used: still under
        calls = len(gemini.requests)
        refused = terminal(await collect(first, incoming("three")))
        assert refused.kind is NoticeKind.OVER_BUDGET
        assert "frees in 20 hours (at 08:00 UTC)" in refused.text
        assert terminal(await collect(second, incoming("four"))).kind is NoticeKind.OVER_BUDGET
        assert len(gemini.requests) == calls  # Gemini was not called
        assert answer_text(await collect(second, incoming("admin", user=ADMIN))) == "echo: admin"  # exempt
        clock.current = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # midnight in Los Angeles
        assert answer_text(await collect(first, incoming("next day"))) == "echo: next day"
    finally:
        await first.aclose()
        await second.aclose()


async def test_usage_shows_what_the_emulator_billed(make_settings: SettingsFactory, gemini: Emulator) -> None:
    clock = FakeClock(NOON)
    settings = make_settings(
        budgets={"tokens_per_user_per_month": 1000}, telegram={"admin_ids": [int(ADMIN)]}
    )
    app = await App.create(settings, clock=clock)
    try:
        usage = {"promptTokenCount": 30, "candidatesTokenCount": 12, "thoughtsTokenCount": 8}
        gemini.script(Reply("a", usage=usage), Reply("b", usage=usage))
        await collect(app, incoming("one", name="Ann"))
        await collect(app, incoming("two", chat="-5", private=False, name="Ann"))  # every chat counts
        shown = terminal(await collect(app, incoming(command="usage"))).text
        assert "today: 2 messages; 100 tokens, no budget" in shown
        assert "this month: 2 messages; 100 tokens of 1000 (10%), frees in 28 days" in shown
        other = terminal(await collect(app, incoming(command="usage", user="user-2"))).text
        assert "today: 0 messages; 0 tokens" in other
        report = await app.engine.usage(Platform.TELEGRAM, "user-1")
        assert report.totals.month_tokens == 100
        stats = terminal(await collect(app, incoming(command="stats", user=ADMIN))).text
        assert "top users [24h]: Ann 100" in stats and "top users [30d]: Ann 100" in stats
        await collect(app, incoming(command="forget"))
        stats = terminal(await collect(app, incoming(command="stats", user=ADMIN))).text
        assert "top users [24h]: user-1 100" in stats  # the name goes, the count stays (budgets)
    finally:
        await app.aclose()


SUMMARIZE = {
    "conversation": {"summarize": True, "summary_model": "gemini-2.5-flash-lite", "max_turns": 10},
    "telegram": {"admin_ids": [int(ADMIN)]},
}


def _summary_of(gemini: Emulator, i: int) -> str:
    """The folded exchanges' text in summary request ``i`` (as the fold prompt gives them)."""
    return gemini.user_texts(i)[0]


async def _talk(app: App, count: int, **kwargs: Any) -> None:
    for n in range(1, count + 1):
        await collect(app, incoming(f"fact {n:02d}", **kwargs))


async def test_exchanges_leaving_the_window_are_summarised_after_the_answer(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory(**SUMMARIZE)
    gemini.script(
        *(Reply(f"summary of facts 01-{n:02d}") for n in range(1, 7)), model="gemini-2.5-flash-lite"
    )
    for n in range(1, 16):
        await collect(app, incoming(f"fact {n:02d}"))
        await app.engine.summaries_settled()
    summaries = [r for r in gemini.requests if r.model == "gemini-2.5-flash-lite"]
    assert len(summaries) == 5  # the 11th to the 15th answers each pushed one exchange out
    assert "fact 01" in summaries[0].contents()[0][1] and "fact 02" not in summaries[0].contents()[0][1]
    assert "summary of facts 01-01" in summaries[1].contents()[0][1]  # the running summary is updated
    await collect(app, incoming("what do you remember?"))
    last = gemini.requests[-1]
    assert last.model == "gemini-2.5-flash"
    assert _system(gemini).endswith("Earlier in this conversation: summary of facts 01-05")
    assert gemini.user_texts(-1)[0] == "fact 06"  # the window starts after what was folded
    await app.engine.summaries_settled()  # this answer pushed "fact 06" out: a sixth fold
    stats = terminal(await collect(app, incoming(command="stats", user=ADMIN))).text
    assert "summary requests 6" in stats
    audit = query_rows("SELECT count(*) FROM audit WHERE action = 'gemini.summarize'")
    assert audit == [(6,)]
    usage = terminal(await collect(app, incoming(command="usage"))).text
    assert "16 messages" in usage  # the summaries are nobody's messages


async def test_the_answer_does_not_wait_for_the_summary(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(**deep_merge(SUMMARIZE, {"conversation": {"max_turns": 1}}))
    gemini.script(Hang(), model="gemini-2.5-flash-lite")  # the summary call never ends by itself
    await collect(app, incoming("one"))
    await collect(app, incoming("two"))  # "one" leaves the window: its fold starts and hangs
    answer = await collect(app, incoming("three"))  # answered while the fold still hangs
    assert answer_text(answer) == "echo: three"
    await eventually(lambda: any(r.model == "gemini-2.5-flash-lite" for r in gemini.requests))
    assert [r.model for r in gemini.requests].count("gemini-2.5-flash-lite") == 1


async def test_reset_and_forget_leave_no_summary_of_erased_text(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory(**deep_merge(SUMMARIZE, {"conversation": {"max_turns": 2}}))
    gemini.script(*(Reply("Ann said secret") for _ in range(10)), model="gemini-2.5-flash-lite")
    await _talk(app, 4)
    await app.engine.summaries_settled()
    assert query_rows("SELECT summary FROM conversations WHERE summary IS NOT NULL") != []
    await collect(app, incoming(command="forget"))
    assert query_rows("SELECT count(*) FROM conversations WHERE summary IS NOT NULL") == [(0,)]
    await _talk(app, 4)
    await app.engine.summaries_settled()
    assert query_rows("SELECT count(*) FROM conversations WHERE summary IS NOT NULL") == [(1,)]
    await collect(app, incoming(command="reset"))
    assert query_rows("SELECT count(*) FROM conversations WHERE summary IS NOT NULL") == [(0,)]
    await collect(app, incoming("after reset"))
    assert "Earlier in this conversation" not in _system(gemini)


async def test_a_moved_chat_keeps_its_settings(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory(**MODELS)
    group = {"private": False, "user": ADMIN}
    await collect(app, incoming(command="model", args="gemini-2.5-pro", chat="-5", **group))
    await app.engine.chat_moved(Platform.TELEGRAM, "-5", "-1005")
    await collect(app, incoming("after the move", chat="-1005", **group))
    assert gemini.requests[-1].model == "gemini-2.5-pro"

"""The chat commands through the engine, on a real SQLite file and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.app import App
from bot.domain import NoticeKind, Platform
from tests.fakes.gemini import ErrorReply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming, notice_kind, terminal
from tests.services import QueryRows

AppFactory = Callable[..., Any]
ADMIN = "900"


async def test_help_states_the_privacy_facts(app_factory: AppFactory) -> None:
    app: App = await app_factory(storage={"retention": "24h"})
    for command in ("start", "help"):
        notice = terminal(await collect(app, incoming(command=command)))
        assert notice.kind is NoticeKind.INFO
        assert "Google Gemini" in notice.text
        assert "24 hours" in notice.text
        assert "/forget" in notice.text and "/reset" in notice.text and "/stats" in notice.text
    slack = incoming(command="help", platform=Platform.SLACK, command_prefix="/gembot ")
    slack = terminal(await collect(app, slack))
    assert "/gembot forget" in slack.text
    chinese = terminal(await collect(app, incoming(command="help", language="zh-CN")))
    assert "Google Gemini" in chinese.text and "24 小时" in chinese.text


async def test_help_lists_summaries_on_slack_only(app_factory: AppFactory) -> None:
    app: App = await app_factory()
    for language in ("en", "zh"):
        slack = incoming(
            command="help", platform=Platform.SLACK, command_prefix="/gembot ", language=language
        )
        shown = terminal(await collect(app, slack)).text
        assert "/gembot summarize [N] - " in shown and "@gembot summarize [N] - " in shown
        assert shown.index("/gembot usage") < shown.index("/gembot summarize") < shown.index("/gembot stats")
        telegram = terminal(await collect(app, incoming(command="help", language=language))).text
        assert "summarize" not in telegram and "/usage" in telegram


async def test_reset_anyone_in_private_admins_only_in_groups(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(telegram={"admin_ids": [int(ADMIN)]})
    nothing = await collect(app, incoming(command="reset"))  # no conversation here yet
    assert notice_kind(nothing) is NoticeKind.INFO and "no conversation here" in nothing[-1].text
    await collect(app, incoming("remember me"))
    done = await collect(app, incoming(command="reset"))
    assert notice_kind(done) is NoticeKind.INFO and "(1 exchange forgotten)" in done[-1].text
    await collect(app, incoming("after reset"))
    assert gemini.user_texts(-1) == ["after reset"]

    await collect(app, incoming("group talk", chat="-5", private=False, name="Bo"))
    denied = await collect(app, incoming(command="reset", chat="-5", private=False))
    assert notice_kind(denied) is NoticeKind.FORBIDDEN
    await collect(app, incoming("still here", chat="-5", private=False, name="Bo"))
    assert gemini.user_texts(-1) == ["Bo: group talk", "Bo: still here"]
    allowed = await collect(app, incoming(command="reset", chat="-5", private=False, user=ADMIN))
    assert notice_kind(allowed) is NoticeKind.INFO
    await collect(app, incoming("fresh", chat="-5", private=False, name="Bo"))
    assert gemini.user_texts(-1) == ["Bo: fresh"]


async def test_stats_for_admins_only_with_figures_and_windows(
    app_factory: AppFactory, gemini: Emulator
) -> None:
    app: App = await app_factory(
        telegram={"admin_ids": [int(ADMIN)]},
        gemini={"quota": {"requests_per_day": 500}, "retry": {"max_attempts": 1}},  # the 500 is not retried
    )
    gemini.script(ErrorReply.server_error(500))
    for text in ("a", "b", "c"):
        await collect(app, incoming(text))
    assert notice_kind(await collect(app, incoming(command="stats"))) is NoticeKind.FORBIDDEN
    report = terminal(await collect(app, incoming(command="stats", user=ADMIN)))
    assert report.kind is NoticeKind.INFO
    for window in ("[1h]", "[24h]", "[30d]"):
        assert window in report.text
    assert "Gemini requests 3, success 66.7%" in report.text
    assert (
        "answered 4" in report.text
    )  # three questions and the refused /stats; not the /stats being answered
    assert "errors: server 1" in report.text
    assert "P50" in report.text and "P95" in report.text
    assert "day 3/500" in report.text and "month 3/100000" in report.text


async def test_forget_erases_the_senders_exchanges_everywhere(
    app_factory: AppFactory, gemini: Emulator, query_rows: QueryRows
) -> None:
    app: App = await app_factory()
    await collect(app, incoming("mine in private", user="ann", chat="ann"))
    await collect(app, incoming("mine in group", user="ann", chat="-1", private=False, name="Ann"))
    await collect(app, incoming("theirs in group", user="bob", chat="-1", private=False, name="Bob"))
    notice = terminal(await collect(app, incoming(command="forget", user="ann", chat="ann")))
    assert notice.kind is NoticeKind.INFO and "2" in notice.text
    texts = [row[0] for row in query_rows("SELECT user_text FROM turns")]
    audit = query_rows("SELECT params FROM audit WHERE action = 'command.forget'")
    assert texts == ["Bob: theirs in group"]
    assert len(audit) == 1 and "mine" not in audit[0][0]
    await collect(app, incoming("again", user="carl", chat="-1", private=False, name="Carl"))
    assert gemini.user_texts(-1) == ["Bob: theirs in group", "Carl: again"]


async def test_counts_are_said_in_the_plural_form_of_each_language(app_factory: AppFactory) -> None:
    app: App = await app_factory(conversation={"max_turns": 1})
    assert (
        "I remember the last exchange of this conversation."
        in terminal(await collect(app, incoming(command="help"))).text
    )
    for text in ("one", "two"):
        await collect(app, incoming(text))
    assert "(2 exchanges forgotten)" in terminal(await collect(app, incoming(command="reset"))).text
    await collect(app, incoming("three"))
    zh = terminal(await collect(app, incoming(command="reset", language="zh-CN"))).text
    assert zh == "完成：本对话已重新开始（清除了 1 轮）。"
    await collect(app, incoming("four"))
    assert terminal(await collect(app, incoming(command="forget"))).text == (
        "Done: 1 exchange you started was erased, in every conversation."
    )
    await collect(app, incoming("five", chat="-1", private=False))
    await collect(app, incoming("six", chat="-2", private=False))
    assert terminal(await collect(app, incoming(command="forget"))).text == (
        "Done: 2 exchanges you started were erased, in every conversation."
    )


async def test_unknown_command_points_to_help(app_factory: AppFactory) -> None:
    app: App = await app_factory()
    notice = terminal(await collect(app, incoming(command="frobnicate")))
    assert "/help" in notice.text


async def test_commands_do_not_call_gemini(app_factory: AppFactory, gemini: Emulator) -> None:
    app: App = await app_factory()
    for command in ("start", "help", "reset", "stats", "forget"):
        terminal(await collect(app, incoming(command=command, platform=Platform.CONSOLE)))
    assert gemini.requests == []
    answer_text(await collect(app, incoming("now a question", platform=Platform.CONSOLE)))

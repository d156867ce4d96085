"""Failures that are not retried (or retried once), stream faults and timeouts, through the real App."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import i18n
from bot.app import App
from bot.domain import AdminAlert, FinalAnswer, Notice, NoticeKind
from tests.conftest import API_KEY
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import CutStream, ErrorReply, Hang, MidStreamError, PromptBlocked, Reply, error_body
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, deltas, incoming, notice_kind, terminal
from tests.integration.resilience.conftest import (
    AppMaker,
    calls,
    inbox_statuses,
    outcomes,
    turns,
)


async def test_400_is_not_retried(make_app: AppMaker, gemini: Emulator, db_path: Path) -> None:
    app: App = await make_app(gemini={"fallback_models": ["gemini-2.5-flash-lite"]})
    gemini.script(ErrorReply.bad_request())
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.BAD_REQUEST
    assert len(gemini.requests) == 1
    assert [(c.outcome, c.http_status, c.gemini_status) for c in calls(db_path)] == [
        ("bad_request", 400, "INVALID_ARGUMENT")
    ]
    assert turns(db_path) == []
    assert inbox_statuses(db_path) == ["answered"]


async def test_too_large_is_retried_once_with_the_older_half_of_the_context_dropped(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    for text in ("m1", "m2", "m3", "m4"):
        answer_text(await collect(app, incoming(text)))
    gemini.script(ErrorReply.too_large())
    assert answer_text(await collect(app, incoming("m5"))) == "echo: m5"
    assert len(gemini.requests) == 6
    assert [t for r, t in gemini.contents(4) if r == "user"] == ["m1", "m2", "m3", "m4", "m5"]
    assert gemini.contents(5) == [
        ("user", "m3"),
        ("model", "echo: m3"),
        ("user", "m4"),
        ("model", "echo: m4"),
        ("user", "m5"),
    ]
    assert outcomes(db_path)[-2:] == ["bad_request", "ok"]
    assert turns(db_path)[-1][:2] == ("m5", "echo: m5")


async def test_too_large_twice_gives_up_with_a_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    answer_text(await collect(app, incoming("m1")))
    gemini.script(ErrorReply.too_large(), ErrorReply.too_large())
    end = terminal(await collect(app, incoming("m2")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.BAD_REQUEST
    assert "too large" in end.text
    assert len(gemini.requests) == 3
    assert gemini.contents(2) == [("user", "m2")]
    assert outcomes(db_path) == ["ok", "bad_request", "bad_request"]
    assert len(turns(db_path)) == 1


async def test_bad_key_is_not_retried_and_alerts_admins_once_per_ten_minutes(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"api_key": "wrong-key", "fallback_models": ["gemini-2.5-flash-lite"]})
    delivered: list[AdminAlert] = []

    async def to_admins(alert: AdminAlert) -> None:
        delivered.append(alert)

    app.alerts.subscribe(to_admins)
    for _ in range(3):
        assert notice_kind(await collect(app, incoming("hi"))) is NoticeKind.BAD_KEY
    await app.alerts.drain()
    assert len(gemini.requests) == 3  # one per message: no retry, no fallback
    assert [(c.outcome, c.http_status) for c in calls(db_path)] == [("bad_key", 400)] * 3
    assert len(delivered) == 1
    assert delivered[0].kind == "gemini_bad_key"
    assert "API key" in delivered[0].text and "HTTP 400" in delivered[0].text
    assert "wrong-key" not in delivered[0].text and API_KEY not in delivered[0].text
    clock.advance(601)
    assert notice_kind(await collect(app, incoming("hi"))) is NoticeKind.BAD_KEY
    await app.alerts.drain()
    assert len(delivered) == 2
    assert turns(db_path) == []


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (ErrorReply.permission_denied(), (403, "PERMISSION_DENIED")),
        (
            ErrorReply(401, error_body(401, "Request had invalid authentication credentials.")),
            (401, "UNAUTHENTICATED"),
        ),
    ],
    ids=["403", "401"],
)
async def test_401_and_403_are_a_bad_key_notice_and_an_alert(
    make_app: AppMaker, gemini: Emulator, db_path: Path, reply: ErrorReply, status: tuple[int, str]
) -> None:
    app: App = await make_app()
    gemini.script(reply)
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.BAD_KEY
    assert len(gemini.requests) == 1  # not retried
    assert [(c.outcome, c.http_status, c.gemini_status) for c in calls(db_path)] == [("bad_key", *status)]
    assert [a.kind for a in app.alerts.published] == ["gemini_bad_key"]
    assert turns(db_path) == []


async def test_blocked_prompt_names_the_reason(make_app: AppMaker, gemini: Emulator, db_path: Path) -> None:
    app: App = await make_app()
    gemini.script(PromptBlocked("PROHIBITED_CONTENT"))
    end = terminal(await collect(app, incoming("something bad")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.SAFETY
    assert "prohibited content" in end.text
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["prompt_blocked"]
    assert turns(db_path) == []
    gemini.script(PromptBlocked("SAFETY"))
    zh = terminal(await collect(app, incoming("不好的内容", language="zh-CN")))
    assert isinstance(zh, Notice) and zh.kind is NoticeKind.SAFETY and "可能有害的内容" in zh.text


async def test_safety_finish_keeps_what_was_shown_and_names_the_reason(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(Reply(chunks=["Here is how ", "to"], finish_reason="SAFETY"))
    events = await collect(app, incoming("how?"))
    end = terminal(events)
    assert isinstance(end, FinalAnswer) and end.text == "Here is how "
    assert end.notice is not None and end.notice.kind is NoticeKind.SAFETY
    assert "possibly harmful content" in end.notice.text
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["response_blocked"]
    assert turns(db_path) == []


async def test_safety_finish_before_any_text_is_a_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(Reply(chunks=[""], finish_reason="RECITATION"))
    end = terminal(await collect(app, incoming("sing it")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.SAFETY
    assert "existing published material" in end.text
    assert len(gemini.requests) == 1
    assert turns(db_path) == []


@pytest.mark.parametrize("reason", ["OTHER", "MALFORMED_FUNCTION_CALL", "FINISH_REASON_UNSPECIFIED"])
async def test_a_finish_that_is_not_safety_is_recorded_as_stopped_not_blocked(
    make_app: AppMaker, gemini: Emulator, db_path: Path, reason: str
) -> None:
    app: App = await make_app()
    gemini.script(Reply(chunks=["Here is how ", "to"], finish_reason=reason))
    end = terminal(await collect(app, incoming("how?")))
    assert isinstance(end, FinalAnswer) and end.text == "Here is how "  # what was shown stays
    assert end.notice is not None
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["response_stopped"]
    assert turns(db_path) == []


async def test_a_finish_that_is_not_safety_does_not_blame_the_safety_system(
    make_app: AppMaker, gemini: Emulator
) -> None:
    app: App = await make_app()
    gemini.script(Reply(chunks=[""], finish_reason="OTHER"))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.ERROR
    assert end.text.startswith("Gemini stopped the answer early (an unspecified reason).")


async def test_max_tokens_gives_the_partial_answer_marked_as_cut(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(Reply(text="A long answer that stops here", finish_reason="MAX_TOKENS"))
    end = terminal(await collect(app, incoming("go on")))
    assert isinstance(end, FinalAnswer) and end.text == "A long answer that stops here"
    assert end.notice is not None and end.notice.kind is NoticeKind.TRUNCATED
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["ok"]
    assert turns(db_path) == [("go on", "A long answer that stops here", "MAX_TOKENS", "gemini-2.5-flash")]


async def test_max_tokens_with_no_parts_gives_a_notice_not_an_empty_message(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"generation": {"thinking_budget": 512}})
    gemini.script(Reply(text="", finish_reason="MAX_TOKENS", thoughts="thinking " * 50))
    events = await collect(app, incoming("hard question"))
    end = terminal(events)
    assert isinstance(end, Notice) and end.kind is NoticeKind.ERROR and end.text
    assert deltas(events) == ""
    assert gemini.requests[0].body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512}
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["empty_response"]
    assert turns(db_path) == []


async def test_stream_cut_midway_keeps_the_shown_part_in_the_same_answer(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(CutStream(["The first part ", "and the second"]))
    events = await collect(app, incoming("tell me"))
    end = terminal(events)
    assert deltas(events) == "The first part and the second"
    assert isinstance(end, FinalAnswer) and end.text == "The first part and the second"
    assert end.notice is not None and end.notice.kind is NoticeKind.CUT
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["stream_cut"]
    assert turns(db_path) == []
    await collect(app, incoming("next"))
    assert gemini.user_texts(-1) == ["next"]  # the cut exchange is not context


async def test_error_event_mid_stream_is_not_retried(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(MidStreamError(["Partial "], error_status=503))
    end = terminal(await collect(app, incoming("tell me")))
    assert isinstance(end, FinalAnswer) and end.text == "Partial "
    assert end.notice is not None and end.notice.kind is NoticeKind.CUT
    assert len(gemini.requests) == 1
    assert [(c.outcome, c.http_status) for c in calls(db_path)] == [("server", 503)]
    assert turns(db_path) == []


async def test_read_timeout_before_any_text_is_retried(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"read_timeout": "200ms"})
    gemini.script(Hang(2.0))
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert len(gemini.requests) == 2
    assert outcomes(db_path) == ["timeout", "ok"]
    assert len(turns(db_path)) == 1


async def test_read_timeout_mid_stream_keeps_the_shown_part(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"read_timeout": "200ms"})
    gemini.script(Hang(2.0, chunks=["Thinking about "]))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, FinalAnswer) and end.text == "Thinking about "
    assert end.notice is not None and end.notice.kind is NoticeKind.CUT
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["timeout"]
    assert turns(db_path) == []


async def test_read_timeout_every_time_gives_an_unavailable_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"read_timeout": "100ms", "retry": {"max_attempts": 2}})
    gemini.script(Hang(2.0), Hang(2.0))
    assert notice_kind(await collect(app, incoming("hi"))) is NoticeKind.UNAVAILABLE
    assert len(gemini.requests) == 2
    assert outcomes(db_path) == ["timeout", "timeout"]
    assert turns(db_path) == []


async def test_max_tokens_with_no_text_says_the_length_limit_was_reached(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"generation": {"max_output_tokens": 64}})
    gemini.script(Reply(text="", finish_reason="MAX_TOKENS", thoughts="thinking " * 50))
    end = terminal(await collect(app, incoming("hard question")))
    assert isinstance(end, Notice) and end.text == i18n.text("en", "length_no_text")
    gemini.script(Reply(text="", finish_reason="MAX_TOKENS", thoughts="thinking " * 50))
    zh = terminal(await collect(app, incoming("难题", language="zh")))
    assert isinstance(zh, Notice) and zh.text == i18n.text("zh", "length_no_text")
    assert len(gemini.requests) == 2  # not retried
    assert turns(db_path) == []

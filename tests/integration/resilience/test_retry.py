"""Retries, fallbacks and circuit breakers, through the real App on SQLite and the Gemini emulator.

Every test also checks that the message got exactly one terminal event (``terminal`` asserts it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.domain import FinalAnswer, Notice, NoticeKind
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import CutStream, ErrorReply, Reply, error_body
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming, notice_kind, terminal
from tests.integration.resilience.conftest import (
    AppMaker,
    calls,
    inbox_statuses,
    outcomes,
    turns,
)

LITE = "gemini-2.5-flash-lite"


async def test_429_with_retry_info_waits_the_fractional_delay_then_answers(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(ErrorReply.rate_limited("1.5s"))
    events = await collect(app, incoming("hi"))
    assert answer_text(events) == "echo: hi"
    assert len(gemini.requests) == 2
    assert clock.sleeps == [1.5]
    assert [(c.attempt, c.outcome, c.http_status, c.gemini_status) for c in calls(db_path)] == [
        (1, "rate_limited", 429, "RESOURCE_EXHAUSTED"),
        (2, "ok", 200, None),
    ]
    assert turns(db_path) == [("hi", "echo: hi", "STOP", "gemini-2.5-flash")]


async def test_bare_429_backs_off_with_full_jitter(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"initial_backoff": "1s", "max_backoff": "30s"}})
    gemini.script(ErrorReply.rate_limited(None), ErrorReply.rate_limited(None))
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert len(gemini.requests) == 3
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0 and 0 <= clock.sleeps[1] <= 2.0
    assert outcomes(db_path) == ["rate_limited", "rate_limited", "ok"]
    assert len(turns(db_path)) == 1


async def test_429_asking_for_more_than_max_wait_is_not_waited_out(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"max_wait": "20s"}})
    gemini.script(ErrorReply.rate_limited("37s"))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.QUOTA
    assert "37 seconds" in end.text
    assert len(gemini.requests) == 1
    assert clock.sleeps == []
    assert outcomes(db_path) == ["rate_limited"]
    assert turns(db_path) == []
    assert inbox_statuses(db_path) == ["answered"]


def quota_429(quota_id: str, retry_delay: str | None) -> ErrorReply:
    """A 429 naming ``quota_id`` in its QuotaFailure, with a RetryInfo only when ``retry_delay`` is set."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": quota_id,
                    "quotaValue": "20",
                }
            ],
        }
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    message = "You exceeded your current quota, please check your plan and billing details."
    return ErrorReply(429, error_body(429, message, details))


DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
MONTH = "GenerateRequestsPerMonthPerProjectPerModel"
EVENING = datetime(2026, 11, 29, 5, 30, tzinfo=UTC)  # Sat 28 Nov 21:30 in Los Angeles
NOON = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # Sun 29 Nov 12:00 there: the month ends in 36 h


@pytest.mark.parametrize(
    ("quota_id", "retry_delay", "now", "told"),
    [
        (DAY, None, EVENING, "2 hours 30 minutes"),  # to midnight Pacific
        (DAY, "30s", EVENING, "2 hours 30 minutes"),  # a short RetryInfo is not believed, nor waited out
        (DAY, "65205s", EVENING, "18 hours 6 minutes"),  # a later RetryInfo is kept
        (MONTH, None, NOON, "1 day 12 hours"),  # to the month's end, not the day's
        (MONTH, "30s", NOON, "1 day 12 hours"),
    ],
    ids=["day", "day-short-retry-info", "day-long-retry-info", "month", "month-short-retry-info"],
)
async def test_daily_or_monthly_quota_429_stops_at_once_and_says_when_it_resets(
    make_app: AppMaker,
    gemini: Emulator,
    clock: FakeClock,
    db_path: Path,
    quota_id: str,
    retry_delay: str | None,
    now: datetime,
    told: str,
) -> None:
    app: App = await make_app(gemini={"fallback_models": [LITE]})
    clock.current = now
    gemini.script(quota_429(quota_id, retry_delay))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.QUOTA
    assert f"try again in {told}." in end.text
    assert len(gemini.requests) == 1  # no retry, no fallback model
    assert clock.sleeps == []
    assert outcomes(db_path) == ["rate_limited"]
    assert turns(db_path) == []


async def test_429_retries_are_bounded_by_max_attempts(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"max_attempts": 3}})
    gemini.script(*[ErrorReply.rate_limited("2s")] * 5)
    assert notice_kind(await collect(app, incoming("hi"))) is NoticeKind.QUOTA
    assert len(gemini.requests) == 3
    assert clock.sleeps == [2.0, 2.0]
    assert outcomes(db_path) == ["rate_limited"] * 3


async def test_500_then_success(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(ErrorReply.server_error(500))
    events = await collect(app, incoming("hi"))
    assert answer_text(events) == "echo: hi"
    assert len(gemini.requests) == 2
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 1.0
    assert [(c.attempt, c.outcome, c.http_status, c.gemini_status) for c in calls(db_path)] == [
        (1, "server", 500, "INTERNAL"),
        (2, "ok", 200, None),
    ]
    assert turns(db_path) == [("hi", "echo: hi", "STOP", "gemini-2.5-flash")]


async def test_500_then_success_without_streaming(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"stream": False})
    gemini.script(ErrorReply.server_error(502), ErrorReply.server_error(504))
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert len(gemini.requests) == 3
    assert outcomes(db_path) == ["server", "server", "ok"]


async def test_stream_ending_before_any_text_is_retried(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(CutStream([]))
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert len(gemini.requests) == 2
    assert outcomes(db_path) == ["stream_cut", "ok"]


async def test_503_forever_falls_back_to_the_next_model(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"fallback_models": [LITE], "retry": {"max_attempts": 3}})
    gemini.script(*[ErrorReply.overloaded()] * 20, model="gemini-2.5-flash")
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert [r.model for r in gemini.requests] == ["gemini-2.5-flash"] * 3 + [LITE]
    assert [(c.model, c.attempt, c.outcome, c.http_status) for c in calls(db_path)] == [
        ("gemini-2.5-flash", 1, "server", 503),
        ("gemini-2.5-flash", 2, "server", 503),
        ("gemini-2.5-flash", 3, "server", 503),
        (LITE, 4, "ok", 200),
    ]
    assert turns(db_path) == [("hi", "echo: hi", "STOP", LITE)]


async def test_every_route_failing_gives_one_unavailable_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"fallback_models": [LITE], "retry": {"max_attempts": 2}})
    gemini.default = ErrorReply.overloaded()
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.UNAVAILABLE
    assert len(gemini.requests) == 4
    assert outcomes(db_path) == ["server"] * 4
    assert turns(db_path) == []
    assert inbox_statuses(db_path) == ["answered"]


async def test_primary_base_url_down_falls_back_to_the_next_url(
    make_app: AppMaker, gemini: Emulator, fallback: Emulator, dead_url: str, db_path: Path
) -> None:
    app: App = await make_app(
        gemini={
            "base_url": dead_url,
            "fallback_base_urls": [fallback.base_url],
            "fallback_models": [LITE],
            "retry": {"max_attempts": 2},
        }
    )
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    # Two refused connections to the dead host; its other model is skipped, as the host itself is down.
    assert [(c.endpoint, c.model, c.outcome) for c in calls(db_path)] == [
        (dead_url, "gemini-2.5-flash", "connection"),
        (dead_url, "gemini-2.5-flash", "connection"),
        (fallback.base_url, "gemini-2.5-flash", "ok"),
    ]
    assert len(fallback.requests) == 1
    assert gemini.requests == []
    assert len(turns(db_path)) == 1


async def test_circuit_opens_then_lets_one_probe_through_after_the_cool_down(
    make_app: AppMaker, gemini: Emulator, fallback: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(
        gemini={
            "fallback_base_urls": [fallback.base_url],
            "retry": {"max_attempts": 2, "breaker_threshold": 2, "breaker_cooldown": "30s"},
        }
    )
    gemini.default = ErrorReply.overloaded()

    async def ask(text: str) -> None:
        assert answer_text(await collect(app, incoming(text))) == f"echo: {text}"

    await ask("one")  # two 503s open the primary's circuit; the fallback URL answers
    assert (len(gemini.requests), len(fallback.requests)) == (2, 1)
    await ask("two")  # open: the primary is not called at all
    assert (len(gemini.requests), len(fallback.requests)) == (2, 2)
    clock.advance(31)
    await ask("three")  # half-open: one probe, it fails, the circuit opens again
    assert (len(gemini.requests), len(fallback.requests)) == (3, 3)
    await ask("four")
    assert (len(gemini.requests), len(fallback.requests)) == (3, 4)
    gemini.default = Reply()
    clock.advance(31)
    await ask("five")  # the probe succeeds: closed again, the primary answers
    assert (len(gemini.requests), len(fallback.requests)) == (4, 4)
    await ask("six")
    assert (len(gemini.requests), len(fallback.requests)) == (5, 4)
    primary = [c.outcome for c in calls(db_path) if c.endpoint == gemini.base_url]
    assert primary == ["server", "server", "server", "ok", "ok"]
    assert len(turns(db_path)) == 6


async def test_a_rate_limited_probe_leaves_the_circuit_half_open(
    make_app: AppMaker, gemini: Emulator, fallback: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(
        gemini={
            "fallback_base_urls": [fallback.base_url],
            "retry": {"max_attempts": 2, "breaker_threshold": 2, "breaker_cooldown": "30s"},
        }
    )
    gemini.default = ErrorReply.overloaded()
    assert answer_text(await collect(app, incoming("one"))) == "echo: one"  # two 503s open the circuit
    clock.advance(31)
    gemini.script(ErrorReply.rate_limited("37s"))
    assert notice_kind(await collect(app, incoming("two"))) is NoticeKind.QUOTA  # the probe gets a 429
    assert (len(gemini.requests), len(fallback.requests)) == (3, 1)
    # Still half-open: the next call is a probe, and one 503 opens the circuit again at once. Had the
    # 429 closed it, this 503 would be the first of two and the primary would be tried twice.
    assert answer_text(await collect(app, incoming("three"))) == "echo: three"
    assert (len(gemini.requests), len(fallback.requests)) == (4, 2)
    primary = [c.outcome for c in calls(db_path) if c.endpoint == gemini.base_url]
    assert primary == ["server", "server", "rate_limited", "server"]


async def test_open_circuit_without_fallback_fails_fast_with_a_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"max_attempts": 1, "breaker_threshold": 1}})
    gemini.default = ErrorReply.overloaded()
    assert notice_kind(await collect(app, incoming("a"))) is NoticeKind.UNAVAILABLE
    assert notice_kind(await collect(app, incoming("b"))) is NoticeKind.UNAVAILABLE
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["server"]
    assert inbox_statuses(db_path) == ["answered", "answered"]


async def test_deadline_bounds_the_whole_answer(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(
        gemini={
            "retry": {
                "max_attempts": 20,
                "initial_backoff": "4s",
                "max_backoff": "4s",
                "deadline": "10s",
                "breaker_threshold": 0,
            }
        }
    )
    gemini.default = ErrorReply.server_error(500)
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.UNAVAILABLE
    assert sum(clock.sleeps) <= 10
    assert len(gemini.requests) == len(clock.sleeps) + 1 < 20
    assert len(outcomes(db_path)) == len(gemini.requests)


async def test_deadline_cuts_an_attempt_already_under_way(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"deadline": "10s", "max_wait": "20s"}})
    # The retry starts 9.7 s into a 10 s deadline; Gemini would then take 3 s to answer it.
    gemini.script(ErrorReply.rate_limited("9.7s"), Reply(latency=3.0))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.UNAVAILABLE  # as for a timeout
    assert clock.sleeps == [9.7]
    assert len(gemini.requests) == 2
    assert outcomes(db_path) == ["rate_limited", "deadline"]
    assert turns(db_path) == []
    assert inbox_statuses(db_path) == ["answered"]


async def test_deadline_cutting_a_stream_keeps_the_shown_part(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"retry": {"deadline": "400ms", "breaker_threshold": 1}})
    gemini.script(Reply(chunks=["Half an answer", " and the rest"], chunk_delay=3.0))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, FinalAnswer) and end.text == "Half an answer"
    assert end.notice is not None and end.notice.kind is NoticeKind.CUT
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["deadline"]
    # Our own deadline cut it, not the endpoint: the circuit (threshold 1) stays closed.
    assert answer_text(await collect(app, incoming("again"))) == "echo: again"


async def test_no_retry_once_text_was_shown(make_app: AppMaker, gemini: Emulator, db_path: Path) -> None:
    app: App = await make_app()
    gemini.script(CutStream(["Half an ans", "wer"], abrupt=True))
    end = terminal(await collect(app, incoming("hi")))
    assert isinstance(end, FinalAnswer) and end.text == "Half an answer"
    assert end.notice is not None and end.notice.kind is NoticeKind.CUT
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["stream_cut"]
    assert turns(db_path) == []


async def test_429_waits_the_longer_of_retry_info_and_the_message(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app()
    gemini.script(ErrorReply.rate_limited("1s", message_delay="1.309977334s"))
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert clock.sleeps == [1.309977334]
    assert outcomes(db_path) == ["rate_limited", "ok"]

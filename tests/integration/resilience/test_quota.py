"""The local Gemini quota guard, through the real App and directly on the real SQLite store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App
from bot.config import QuotaSettings
from bot.domain import Notice, NoticeKind
from bot.guards.quota import QuotaGuard
from bot.llm.policy import AnswerPolicy, Attempt, QuotaExceededError
from bot.llm.types import ChatMessage, LlmRequest
from bot.quota_windows import window_key
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming, terminal
from tests.integration.resilience.conftest import AppMaker, inbox_statuses, outcomes, turns


def gauge(app: App, name: str, window: str) -> float | None:
    return app.metrics.registry.get_sample_value(name, {"window": window})


async def test_a_message_over_the_cap_is_refused_before_gemini_with_when_it_frees(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock, db_path: Path
) -> None:
    app: App = await make_app(gemini={"quota": {"requests_per_minute": 2}})
    for text in ("a", "b"):
        answer_text(await collect(app, incoming(text)))
    end = terminal(await collect(app, incoming("c")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.QUOTA
    assert "50 seconds" in end.text  # the clock reads 12:00:10; the minute frees at 12:01:00
    assert len(gemini.requests) == 2
    assert outcomes(db_path) == ["ok", "ok"]  # nothing recorded for the refused message
    assert [t[0] for t in turns(db_path)] == ["a", "b"]
    assert inbox_statuses(db_path) == ["answered"] * 3
    assert gauge(app, "gembot_quota_used", "minute") == 2
    assert gauge(app, "gembot_quota_limit", "minute") == 2
    assert app.metrics.registry.get_sample_value("gembot_refusals_total", {"reason": "quota"}) == 1
    clock.advance(60)
    assert answer_text(await collect(app, incoming("d"))) == "echo: d"
    assert len(gemini.requests) == 3


async def test_every_attempt_counts(make_app: AppMaker, gemini: Emulator, clock: FakeClock) -> None:
    app: App = await make_app(gemini={"quota": {"requests_per_minute": 5}})
    gemini.script(ErrorReply.server_error(500))
    answer_text(await collect(app, incoming("hi")))
    assert await app.store.quota.quota_count("minute", window_key("minute", clock.now())) == 2
    assert gauge(app, "gembot_quota_used", "month") == 2


async def test_a_retry_over_the_cap_ends_the_answer_with_the_quota_notice(
    make_app: AppMaker, gemini: Emulator, db_path: Path
) -> None:
    app: App = await make_app(gemini={"quota": {"requests_per_minute": 1}})
    gemini.script(ErrorReply.server_error(500))
    assert terminal(await collect(app, incoming("hi"))).kind is NoticeKind.QUOTA  # type: ignore[union-attr]
    assert len(gemini.requests) == 1
    assert outcomes(db_path) == ["server"]
    assert turns(db_path) == []


async def test_a_refused_retry_is_told_apart_from_a_refusal_before_gemini(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock
) -> None:
    app: App = await make_app()
    settings = app.settings.gemini
    quota = QuotaGuard(app.store.quota, QuotaSettings(requests_per_minute=1, requests_per_month=0), clock)
    policy = AnswerPolicy(app.client, settings, clock, quota=quota)
    request = LlmRequest(contents=(ChatMessage("user", "hi"),))
    attempts: list[Attempt] = []
    gemini.script(ErrorReply.server_error(500))
    with pytest.raises(QuotaExceededError) as retry:
        _ = [chunk async for chunk in policy.answer(request, attempts.append)]
    assert [a.outcome for a in attempts] == ["server"]
    assert retry.value.before_gemini is False  # Gemini was called; only the retry was refused
    with pytest.raises(QuotaExceededError) as first:
        _ = [chunk async for chunk in policy.answer(request, attempts.append)]
    assert first.value.before_gemini is True
    assert len(gemini.requests) == 1


async def test_a_refused_retry_is_not_counted_as_refused_before_gemini(
    make_app: AppMaker, gemini: Emulator
) -> None:
    app: App = await make_app(gemini={"quota": {"requests_per_minute": 1}})
    gemini.script(ErrorReply.server_error(500))
    assert terminal(await collect(app, incoming("hi"))).kind is NoticeKind.QUOTA  # type: ignore[union-attr]
    assert app.metrics.registry.get_sample_value("gembot_refusals_total", {"reason": "quota"}) in (None, 0)


async def test_a_refusal_on_one_window_counts_nothing_in_the_others(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock
) -> None:
    app: App = await make_app(
        gemini={"quota": {"requests_per_minute": 10, "requests_per_day": 1, "requests_per_month": 100}}
    )
    answer_text(await collect(app, incoming("a")))
    end = terminal(await collect(app, incoming("b")))
    assert isinstance(end, Notice) and end.kind is NoticeKind.QUOTA
    assert "19 hours 59 minutes" in end.text  # 04:00:10 in Los Angeles: the day frees at midnight there
    now = clock.now()
    for window in ("minute", "day", "month"):
        assert await app.store.quota.quota_count(window, window_key(window, now)) == 1
    assert len(gemini.requests) == 1


async def test_counters_survive_a_restart(make_app: AppMaker, gemini: Emulator) -> None:
    app: App = await make_app(gemini={"quota": {"requests_per_day": 1}})
    answer_text(await collect(app, incoming("a")))
    await app.aclose()
    again: App = await make_app(gemini={"quota": {"requests_per_day": 1}})
    assert terminal(await collect(again, incoming("b"))).kind is NoticeKind.QUOTA  # type: ignore[union-attr]
    assert len(gemini.requests) == 1


async def test_concurrent_requests_never_pass_the_cap(make_app: AppMaker, clock: FakeClock) -> None:
    app: App = await make_app()
    guard = QuotaGuard(app.store.quota, QuotaSettings(requests_per_minute=5, requests_per_month=0), clock)
    results = await asyncio.gather(*(guard.acquire() for _ in range(20)))
    assert sum(r is None for r in results) == 5
    refused = [r for r in results if r is not None]
    assert {(r.window, r.limit) for r in refused} == {("minute", 5)}
    assert (await guard.used())["minute"] == 5


async def test_days_roll_over_at_midnight_pacific(make_app: AppMaker, clock: FakeClock) -> None:
    app: App = await make_app()
    guard = QuotaGuard(app.store.quota, QuotaSettings(requests_per_day=1, requests_per_month=0), clock)
    clock.current = datetime(2026, 11, 29, 7, 59, 59, tzinfo=UTC)  # 23:59:59 in Los Angeles
    assert await guard.acquire() is None
    refusal = await guard.acquire()
    assert refusal is not None and refusal.window == "day"
    assert refusal.retry_after(clock.now()) == 1.0
    clock.advance(2)  # 00:00:01 Pacific, still the 29th in UTC
    assert await guard.acquire() is None


async def test_no_caps_means_nothing_is_counted(make_app: AppMaker, clock: FakeClock) -> None:
    app: App = await make_app()
    guard = QuotaGuard(app.store.quota, QuotaSettings(requests_per_month=0), clock)
    assert not guard.enabled
    assert await guard.acquire() is None
    assert (await guard.used())["month"] == 0


async def test_a_message_the_quota_refuses_does_not_count_against_the_rate_limits(
    make_app: AppMaker, gemini: Emulator, clock: FakeClock
) -> None:
    """Refused messages do not count against the rate limits. With 2 messages a minute allowed per user,
    the one the quota refused in between does not use the second: the next one after the quota frees is
    answered."""
    app: App = await make_app(
        gemini={"quota": {"requests_per_minute": 1}}, rate_limits={"per_user": "2/minute", "per_chat": ""}
    )
    answer_text(await collect(app, incoming("a")))
    refused = terminal(await collect(app, incoming("b")))
    assert isinstance(refused, Notice) and refused.kind is NoticeKind.QUOTA
    clock.advance(60)  # the quota's minute frees (the rate limit's window runs on real time: still open)
    assert answer_text(await collect(app, incoming("c"))) == "echo: c"
    assert len(gemini.requests) == 2

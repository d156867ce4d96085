"""/stats figures against a hand count of emulated calls placed in time with a settable clock."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot import stats
from bot.app import App
from bot.domain import NoticeKind
from tests.conftest import SettingsFactory, deep_merge
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply, GeminiEmulator, PromptBlocked, Reply
from tests.helpers import collect, incoming, notice_kind
from tests.integration.ops.conftest import OPS_CONFIG

NOW = datetime.fromisoformat("2026-11-28T12:00:00+00:00")  # 04:00 in California: the day began 08:00 UTC
QUOTA = {"requests_per_minute": 0, "requests_per_day": 100, "requests_per_month": 100000}


@pytest.fixture
async def replicas(make_settings: SettingsFactory) -> AsyncIterator[tuple[App, App, FakeClock]]:
    """Two Apps on one database (two replicas) sharing a settable clock."""
    clock = FakeClock(NOW)
    settings = make_settings(**deep_merge(OPS_CONFIG, {"gemini": {"quota": QUOTA}}))
    first = await App.create(settings, clock=clock)
    second = await App.create(settings, clock=clock, migrate=False)
    try:
        yield first, second, clock
    finally:
        await first.aclose()
        await second.aclose()


async def emulate(app: App, clock: FakeClock, gemini: GeminiEmulator) -> None:
    """31 d ago: 1 ok (outside every window). 2 d ago: 2 ok, 1 server error. 3 h ago: 1 slow ok (0.4 s),
    1 Gemini 429 (a quota refusal). Now: n1 ok then rate limited (no call), n2 ok, n3 prompt blocked."""

    async def at(age: timedelta, *steps: tuple[str, object]) -> None:
        clock.current = NOW - age
        for user, behaviour in steps:
            if behaviour is not None:
                gemini.script(behaviour)  # type: ignore[arg-type]
            await collect(app, incoming("question", user=user, chat=user))

    await at(timedelta(days=31), ("o1", Reply()))
    await at(timedelta(days=2), ("d1", Reply()), ("d2", Reply()), ("d3", ErrorReply.server_error(500)))
    await at(timedelta(hours=3), ("h1", Reply(latency=0.4)), ("h2", ErrorReply.rate_limited("37s")))
    await at(timedelta(0), ("n1", Reply()), ("n1", None), ("n2", Reply()), ("n3", PromptBlocked()))
    assert gemini.pending() == 0


def latencies_since(db_path: Path, since: datetime) -> list[float]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT latency_ms FROM llm_calls WHERE at >= ?", (since.replace(tzinfo=None).isoformat(" "),)
        ).fetchall()
    return sorted(r[0] for r in rows)


def nearest_rank(values: list[float], fraction: float) -> float:
    return values[math.ceil(fraction * len(values)) - 1]


async def test_stats_match_a_hand_count_and_are_the_same_on_every_replica(
    replicas: tuple[App, App, FakeClock], gemini: GeminiEmulator, db_path: Path
) -> None:
    first, second, clock = replicas
    await emulate(first, clock, gemini)
    clock.current = NOW
    report = await stats.collect(first.store.statistics, first.store.quota, first.settings.gemini.quota, NOW)
    assert report == await stats.collect(
        second.store.statistics, second.store.quota, second.settings.gemini.quota, NOW
    )

    by_name = {w.name: w for w in report.windows}
    h1, d1, m1 = by_name["1h"], by_name["24h"], by_name["30d"]
    # Gemini requests and successes (every HTTP attempt: one per message here).
    assert (h1.requests, h1.successes) == (3, 2)
    assert (d1.requests, d1.successes) == (5, 3)
    assert (m1.requests, m1.successes) == (8, 5)
    assert h1.success_rate == pytest.approx(2 / 3)
    assert d1.success_rate == pytest.approx(3 / 5)
    assert m1.success_rate == pytest.approx(5 / 8)
    # Errors by type.
    assert h1.errors == {"prompt_blocked": 1}
    assert d1.errors == {"prompt_blocked": 1, "rate_limited": 1}
    assert m1.errors == {"prompt_blocked": 1, "rate_limited": 1, "server": 1}
    # Refusals: Gemini safety block = filtered, its 429 = quota, the per-user limit = rate_limited.
    assert h1.refusals == {"filtered": 1, "rate_limited": 1}
    assert d1.refusals == m1.refusals == {"filtered": 1, "rate_limited": 1, "quota": 1}
    # Messages (every one got an answer), active conversations and users (one chat per user here).
    assert (h1.messages_answered, d1.messages_answered, m1.messages_answered) == (4, 6, 9)
    assert (h1.messages_failed, d1.messages_failed, m1.messages_failed) == (0, 0, 0)
    assert (h1.active_users, d1.active_users, m1.active_users) == (3, 5, 8)
    assert (h1.active_conversations, d1.active_conversations, m1.active_conversations) == (3, 5, 8)
    # Latency percentiles: exact nearest-rank over the stored latencies of each window.
    for window, delta in (
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
    ):
        values = latencies_since(db_path, NOW - delta)
        w = by_name[window]
        assert len(values) == w.requests
        assert (w.p50_ms, w.p90_ms, w.p95_ms) == tuple(nearest_rank(values, f) for f in (0.5, 0.9, 0.95))
    assert d1.p95_ms is not None and d1.p95_ms >= 400  # the slow call 3 h ago is the 24 h maximum
    assert h1.p95_ms is not None and h1.p95_ms < 400
    # Tokens are the sums over the window's calls.
    with sqlite3.connect(db_path) as db:
        tokens = db.execute("SELECT sum(prompt_tokens), sum(output_tokens) FROM llm_calls").fetchone()
        old = db.execute("SELECT prompt_tokens, output_tokens FROM llm_calls ORDER BY at LIMIT 1").fetchone()
    assert (m1.tokens_in, m1.tokens_out) == (tokens[0] - old[0], tokens[1] - old[1])
    # Quota: the minute holds now's 3 calls, the US Pacific day the last 5, the month 8 (31 d ago is October).
    assert [(q.window, q.used, q.limit) for q in report.quota] == [
        ("minute", 3, 0),
        ("day", 5, 100),
        ("month", 8, 100000),
    ]


async def test_render_is_compact_and_says_it_all(
    replicas: tuple[App, App, FakeClock], gemini: GeminiEmulator
) -> None:
    first, _, clock = replicas
    await emulate(first, clock, gemini)
    clock.current = NOW
    text = stats.render(
        await stats.collect(first.store.statistics, first.store.quota, first.settings.gemini.quota, NOW), "en"
    )
    assert "[30d] answered 9, failed 0\nGemini requests 8, success 62.5%\n" in text
    assert "errors: prompt_blocked 1, rate_limited 1, server 1\n" in text
    assert "refused: filter 1, rate limit 1, quota 1, budget 0\n" in text
    assert "latency P50 " in text and " / P95 " in text
    assert text.endswith("quota: minute 3/∞; day 5/100; month 8/100000")
    lines = text.splitlines()
    assert len(lines) <= 28
    assert max(len(line) for line in lines) <= 56, max(lines, key=len)
    zh = stats.render(
        await stats.collect(first.store.statistics, first.store.quota, first.settings.gemini.quota, NOW), "zh"
    )
    assert "【30d】回答 9" in zh and "拒绝：过滤 1，限速 1，配额 1，预算 0" in zh


async def test_stats_command_shows_the_same_figures(
    replicas: tuple[App, App, FakeClock], gemini: GeminiEmulator, make_settings: SettingsFactory
) -> None:
    first, second, clock = replicas
    await emulate(first, clock, gemini)
    clock.current = NOW
    # The console user is an admin; here the admin is the one configured for Telegram.
    admin = make_settings(
        **deep_merge(OPS_CONFIG, {"gemini": {"quota": QUOTA}, "telegram": {"admin_ids": [42]}})
    )
    async with await App.create(admin, clock=clock, migrate=False) as third:
        events = await collect(third, incoming(command="stats", user="42", chat="42"))
    assert notice_kind(events) is NoticeKind.INFO
    shown = events[-1].text  # type: ignore[union-attr]
    expected = stats.render(
        await stats.collect(
            second.store.statistics,
            second.store.quota,
            second.settings.gemini.quota,
            NOW,
            usage=second.store.usage,
            feedback=second.store.feedback,
        ),
        "en",
    )
    # The /stats message itself is answered only after its figures were read: mask that one count.
    assert re.sub(r"answered \d+", "answered N", shown) == re.sub(r"answered \d+", "answered N", expected)
    assert "answered 4," in shown and "answered 5," in expected
    assert "top users [24h]: h1 13, n1 13, n2 13" in shown  # ids where the platform gave no name

"""Usage statistics read from the database, so every replica reports the same figures.

Everything is an SQL aggregate over one window (``COUNT``/``SUM`` grouped by outcome, and exact
nearest-rank latency percentiles with ``ORDER BY .. LIMIT 1 OFFSET rank-1``): a month of Gemini calls is
never loaded into memory. Sources:

* Gemini requests, success rate, latency, errors by type, tokens: ``llm_calls`` (every HTTP attempt;
  kept ``storage.stats_retention``, 35 days by default);
* summary requests (``conversation.summarize``): ``audit`` rows with action ``gemini.summarize``;
* refusals (word filter, rate limits, quota, budgets): ``audit`` rows with action ``message.refused``
  written by the engine (kept ``storage.audit_retention``);
* messages answered/failed: ``inbox`` (no text; kept ``storage.stats_retention`` like ``llm_calls``,
  its reply targets cleared after ``storage.retention``; ``/forget`` deletes the sender's rows);
* active conversations and users: ``conversations.last_active_at`` and ``users.last_seen_at``;
* top users by tokens (24 h and 30 d): ``user_usage`` (per user and hour, with the display name the
  platform gave);
* quota used: the local quota counter of the current window or, when it is not kept (no cap), the Gemini
  calls recorded since the window began, whichever is higher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import QuotaSettings
from bot.i18n import Language
from bot.memory import SUMMARY_ACTION
from bot.observability.metrics import FILTERED, OVER_BUDGET, QUOTA, RATE_LIMITED, REFUSAL_ACTION
from bot.quota_windows import WINDOWS, window_key, window_start
from bot.store import QuotaCounters, Statistics, TopUser, UsageCounters

STATS_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
)
PERCENTILES = (0.50, 0.90, 0.95)
TOP_USER_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
)
TOP_USERS = 5


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none).

    The same definition :meth:`bot.store.Statistics.call_latency_percentiles` computes in SQL.
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Figures over one rolling window."""

    name: str
    messages_answered: int
    messages_failed: int
    requests: int
    successes: int
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    errors: dict[str, int]
    active_conversations: int
    active_users: int
    tokens_in: int
    tokens_out: int
    refusals: dict[str, int] = field(default_factory=dict)
    summaries: int = 0  # Gemini requests that folded conversations into their summaries (their own kind)

    @property
    def success_rate(self) -> float | None:
        """Successful Gemini requests over all requests (None when there were none)."""
        return self.successes / self.requests if self.requests else None


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """Gemini requests counted in the current quota window against the local cap (0 = none)."""

    window: str
    used: int
    limit: int


@dataclass(frozen=True, slots=True)
class StatsReport:
    """Everything /stats shows."""

    windows: list[WindowStats]
    quota: list[QuotaUse] = field(default_factory=list)
    top_users: dict[str, list[TopUser]] = field(default_factory=dict)  # window name -> most tokens first


async def window_stats(statistics: Statistics, name: str, since: datetime) -> WindowStats:
    """The figures of one window starting at ``since``."""
    outcomes = await statistics.call_outcomes(since)
    p50, p90, p95 = await statistics.call_latency_percentiles(since, PERCENTILES)
    counts = await statistics.activity_counts(since)
    refusals = await statistics.audit_outcomes(REFUSAL_ACTION, since)
    summaries = await statistics.audit_outcomes(SUMMARY_ACTION, since)
    errors = {kind: n for kind, (n, _, _) in outcomes.items() if kind != "ok"}
    return WindowStats(
        name=name,
        messages_answered=counts.messages_answered,
        messages_failed=counts.messages_failed,
        requests=sum(n for n, _, _ in outcomes.values()),
        successes=outcomes.get("ok", (0, 0, 0))[0],
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        errors=dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
        active_conversations=counts.active_conversations,
        active_users=counts.active_users,
        tokens_in=sum(t for _, t, _ in outcomes.values()),
        tokens_out=sum(t for _, _, t in outcomes.values()),
        refusals=refusals,
        summaries=sum(summaries.values()),
    )


async def collect(
    statistics: Statistics,
    counters: QuotaCounters,
    quota: QuotaSettings,
    now: datetime,
    usage: UsageCounters | None = None,
) -> StatsReport:
    """Read the figures for every window and the quota use now (``counters``: the local quota's)."""
    windows = [await window_stats(statistics, name, now - delta) for name, delta in STATS_WINDOWS]
    limits = {
        "minute": quota.requests_per_minute,
        "day": quota.requests_per_day,
        "month": quota.requests_per_month,
    }
    uses = []
    for window in WINDOWS:
        calls = sum(n for n, _, _ in (await statistics.call_outcomes(window_start(window, now))).values())
        counted = await counters.quota_count(window, window_key(window, now))
        uses.append(QuotaUse(window, max(calls, counted), limits[window]))
    top: dict[str, list[TopUser]] = {}
    if usage is not None:
        for name, delta in TOP_USER_WINDOWS:
            top[name] = await usage.top_users(now - delta, TOP_USERS)
    return StatsReport(windows=windows, quota=uses, top_users=top)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


_REFUSAL_NAMES = {
    "en": {FILTERED: "filter", RATE_LIMITED: "rate limit", QUOTA: "quota", OVER_BUDGET: "budget"},
    "zh": {FILTERED: "过滤", RATE_LIMITED: "限速", QUOTA: "配额", OVER_BUDGET: "预算"},
}


def _refusals(w: WindowStats, zh: bool) -> str:
    names = _REFUSAL_NAMES["zh" if zh else "en"]
    return ("，" if zh else ", ").join(f"{label} {w.refusals.get(key, 0)}" for key, label in names.items())


def render(report: StatsReport, language: Language) -> str:
    """A compact text for a phone screen: 7 short lines per window, none much wider than 40 characters."""
    zh = language == "zh"
    lines = ["📊 gembot 统计" if zh else "📊 gembot stats"]
    for w in report.windows:
        rate = "-" if w.success_rate is None else f"{w.success_rate * 100:.1f}%"
        errors = ", ".join(f"{k} {v}" for k, v in w.errors.items()) or ("无" if zh else "none")
        if zh:
            lines.append(
                f"\n【{w.name}】回答 {w.messages_answered}，失败 {w.messages_failed}\n"
                f"Gemini 请求 {w.requests}，成功率 {rate}\n"
                f"延迟 P50 {_ms(w.p50_ms)} / P90 {_ms(w.p90_ms)} / P95 {_ms(w.p95_ms)}\n"
                f"错误：{errors}\n"
                f"拒绝：{_refusals(w, zh)}\n"
                f"活跃：对话 {w.active_conversations}，用户 {w.active_users}\n"
                f"tokens：入 {w.tokens_in}，出 {w.tokens_out}；摘要请求 {w.summaries}"
            )
        else:
            lines.append(
                f"\n[{w.name}] answered {w.messages_answered}, failed {w.messages_failed}\n"
                f"Gemini requests {w.requests}, success {rate}\n"
                f"latency P50 {_ms(w.p50_ms)} / P90 {_ms(w.p90_ms)} / P95 {_ms(w.p95_ms)}\n"
                f"errors: {errors}\n"
                f"refused: {_refusals(w, zh)}\n"
                f"active: {w.active_conversations} conversations, {w.active_users} users\n"
                f"tokens: {w.tokens_in} in, {w.tokens_out} out; summary requests {w.summaries}"
            )
    quota = "; ".join(f"{q.window} {q.used}/{q.limit if q.limit else '∞'}" for q in report.quota)
    lines.append(("\n配额：" if zh else "\nquota: ") + quota)
    for name, users in report.top_users.items():
        ranked = ", ".join(f"{u.display_name or u.user_id} {u.tokens}" for u in users) or (
            "无" if zh else "none"
        )
        lines.append(f"{'tokens 最多' if zh else 'top users'} [{name}]: {ranked}")
    return "\n".join(lines)

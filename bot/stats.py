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
from bot.i18n import Language, text
from bot.llm.tools import CODE_EXECUTION, GOOGLE_SEARCH, URL_CONTEXT
from bot.memory import SUMMARY_ACTION
from bot.observability.metrics import (
    FILTERED,
    OVER_BUDGET,
    QUOTA,
    RATE_LIMITED,
    REFUSAL_ACTION,
    TOOL_CALL_ACTION,
)
from bot.quota_windows import WINDOWS, window_key, window_start
from bot.store import (
    Feedback,
    LatencyBucket,
    QuotaCounters,
    Satisfaction,
    Statistics,
    TopUser,
    UsageCounters,
)

STATS_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
)
PERCENTILES = (0.50, 0.90, 0.95)
SERIES_BUCKETS: dict[str, timedelta] = {
    "1h": timedelta(minutes=5),
    "24h": timedelta(hours=1),
    "30d": timedelta(days=1),
}
"""How finely the admin page's charts cut each window."""
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
    tool_calls: dict[str, int] = field(default_factory=dict)  # searches, link reads, code runs
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
    satisfaction: dict[str, Satisfaction] = field(default_factory=dict)  # window name -> votes standing


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
        tool_calls=await statistics.audit_outcomes(TOOL_CALL_ACTION, since),
        summaries=sum(summaries.values()),
    )


async def collect(
    statistics: Statistics,
    counters: QuotaCounters,
    quota: QuotaSettings,
    now: datetime,
    *,
    usage: UsageCounters | None = None,
    feedback: Feedback | None = None,
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
    satisfaction: dict[str, Satisfaction] = {}
    if feedback is not None:
        for name, delta in TOP_USER_WINDOWS:
            satisfaction[name] = await feedback.satisfaction(now - delta)
    return StatsReport(windows=windows, quota=uses, top_users=top, satisfaction=satisfaction)


async def latency_series(statistics: Statistics, now: datetime) -> dict[str, list[LatencyBucket]]:
    """Per window of :data:`STATS_WINDOWS`: Gemini calls and latency percentiles bucket by bucket.

    Buckets are aligned to multiples of their size (the last one is the current, partial one), so a
    chart's bars do not shift with every refresh.
    """
    series = {}
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    for name, delta in STATS_WINDOWS:
        size = SERIES_BUCKETS[name]
        current = epoch + ((now - epoch) // size) * size
        count = int(delta / size)
        bounds = [current - size * k for k in range(count - 1, -1, -1)] + [now]
        series[name] = await statistics.call_latency_buckets(bounds, PERCENTILES)
    return series


def format_ms(value: float | None) -> str:
    """A latency for people: 850ms, 1.25s, or - when unknown."""
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


_REFUSAL_KEYS = {
    FILTERED: "stats_refused_filter",
    RATE_LIMITED: "stats_refused_rate_limit",
    QUOTA: "stats_refused_quota",
    OVER_BUDGET: "stats_refused_budget",
}


def _refusals(w: WindowStats, language: Language) -> str:
    return text(language, "stats_separator").join(
        text(language, key, count=w.refusals.get(name, 0)) for name, key in _REFUSAL_KEYS.items()
    )


_TOOL_KEYS = {
    GOOGLE_SEARCH: "stats_tool_searches",
    URL_CONTEXT: "stats_tool_links",
    CODE_EXECUTION: "stats_tool_code_runs",
}


def _tools(w: WindowStats, language: Language) -> str:
    """One more line when Gemini's tools were used in the window, else nothing."""
    if not any(w.tool_calls.values()):
        return ""
    counts = text(language, "stats_separator").join(
        text(language, key, count=w.tool_calls.get(tool, 0)) for tool, key in _TOOL_KEYS.items()
    )
    return "\n" + text(language, "stats_tools", tools=counts)


def render(report: StatsReport, language: Language) -> str:
    """A compact text for a phone screen: 7 short lines per window (8 when Gemini's tools were used), none
    much wider than 40 characters."""
    lines = [text(language, "stats_title")]
    for w in report.windows:
        rate = "-" if w.success_rate is None else f"{w.success_rate * 100:.1f}%"
        errors = ", ".join(f"{k} {v}" for k, v in w.errors.items()) or text(language, "stats_no_errors")
        lines.append(
            "\n"
            + text(
                language,
                "stats_window",
                window=w.name,
                answered=w.messages_answered,
                failed=w.messages_failed,
                requests=w.requests,
                rate=rate,
                p50=format_ms(w.p50_ms),
                p90=format_ms(w.p90_ms),
                p95=format_ms(w.p95_ms),
                errors=errors,
                refused=_refusals(w, language),
                conversations=text(language, "stats_conversations", count=w.active_conversations),
                users=text(language, "stats_users", count=w.active_users),
                tokens_in=w.tokens_in,
                tokens_out=w.tokens_out,
                summaries=w.summaries,
            )
            + _tools(w, language)
        )
    quota = "; ".join(f"{q.window} {q.used}/{q.limit if q.limit else '∞'}" for q in report.quota)
    lines.append("\n" + text(language, "stats_quota", quota=quota))
    for name, users in report.top_users.items():
        ranked = ", ".join(f"{u.display_name or u.user_id} {u.tokens}" for u in users)
        lines.append(
            text(language, "stats_top_users", window=name, ranked=ranked or text(language, "stats_none"))
        )
    lines += [_satisfaction(name, votes, language) for name, votes in report.satisfaction.items()]
    return "\n".join(lines)


def format_share(votes: Satisfaction) -> str:
    """The 👍 share of the votes, like 75%, or - when there were none."""
    return "-" if votes.share is None else f"{votes.share * 100:.0f}%"


def _satisfaction(window: str, votes: Satisfaction, language: Language) -> str:
    if not votes.total:
        return text(language, "stats_no_votes", window=window)
    return text(
        language,
        "stats_satisfaction",
        window=window,
        share=format_share(votes),
        up=votes.up,
        down=votes.down,
    )

"""Usage statistics read from the database, so every replica reports the same figures."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import QuotaSettings
from bot.i18n import Language
from bot.quota_windows import WINDOWS, window_start
from bot.store import CallRecord, Store

STATS_WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("1h", timedelta(hours=1)),
    ("24h", timedelta(hours=24)),
    ("30d", timedelta(days=30)),
)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
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


def summarize(name: str, calls: Sequence[CallRecord]) -> tuple[int, int, list[float], Counter[str], int, int]:
    """Requests, successes, sorted latencies, error counts and tokens over ``calls``."""
    latencies = sorted(c.latency_ms for c in calls)
    errors: Counter[str] = Counter(c.outcome for c in calls if c.outcome != "ok")
    successes = sum(1 for c in calls if c.outcome == "ok")
    tokens_in = sum(c.prompt_tokens for c in calls)
    tokens_out = sum(c.output_tokens for c in calls)
    return len(calls), successes, latencies, errors, tokens_in, tokens_out


async def collect(store: Store, quota: QuotaSettings, now: datetime) -> StatsReport:
    """Read the figures for every window and the quota use now."""
    longest = max(delta for _, delta in STATS_WINDOWS)
    earliest_quota = window_start("month", now)
    since = min(now - longest, earliest_quota)
    calls = await store.calls_since(since)
    windows: list[WindowStats] = []
    for name, delta in STATS_WINDOWS:
        start = now - delta
        in_window = [c for c in calls if c.at >= start]
        requests, successes, latencies, errors, tokens_in, tokens_out = summarize(name, in_window)
        counts = await store.stats_counts(start)
        windows.append(
            WindowStats(
                name=name,
                messages_answered=counts.messages_answered,
                messages_failed=counts.messages_failed,
                requests=requests,
                successes=successes,
                p50_ms=percentile(latencies, 0.50),
                p90_ms=percentile(latencies, 0.90),
                p95_ms=percentile(latencies, 0.95),
                errors=dict(errors.most_common()),
                active_conversations=counts.active_conversations,
                active_users=counts.active_users,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
            )
        )
    limits = {
        "minute": quota.requests_per_minute,
        "day": quota.requests_per_day,
        "month": quota.requests_per_month,
    }
    uses = []
    for window in WINDOWS:
        start = window_start(window, now)
        uses.append(QuotaUse(window, sum(1 for c in calls if c.at >= start), limits[window]))
    return StatsReport(windows=windows, quota=uses)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def render(report: StatsReport, language: Language) -> str:
    """A compact text for a phone screen."""
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
                f"活跃对话 {w.active_conversations}，用户 {w.active_users}；"
                f"tokens 入 {w.tokens_in} 出 {w.tokens_out}"
            )
        else:
            lines.append(
                f"\n[{w.name}] answered {w.messages_answered}, failed {w.messages_failed}\n"
                f"Gemini requests {w.requests}, success {rate}\n"
                f"latency P50 {_ms(w.p50_ms)} / P90 {_ms(w.p90_ms)} / P95 {_ms(w.p95_ms)}\n"
                f"errors: {errors}\n"
                f"active conversations {w.active_conversations}, users {w.active_users}; "
                f"tokens in {w.tokens_in} out {w.tokens_out}"
            )
    quota = "; ".join(f"{q.window} {q.used}/{q.limit if q.limit else '∞'}" for q in report.quota)
    lines.append(("\n配额：" if zh else "\nquota: ") + quota)
    return "\n".join(lines)

"""Per-user token budgets (``budgets:``): checked before Gemini is called, counted after it answered.

A user is a platform identity (platform, user id): the same person on Telegram and on Slack is two users,
as nothing links the two. Tokens are what Google bills (prompt, candidates and thoughts from
``usageMetadata``), summed in the database so every replica and restart agrees. Days and months roll
over at midnight US Pacific, as Gemini's quota does. The check reads the totals before the call, so
answers already running may take a user a little past the budget; the next message is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.clock import Clock
from bot.config import BudgetSettings
from bot.i18n import Language, format_wait, text
from bot.llm.types import Usage
from bot.quota_windows import window_end, window_start
from bot.store import UsageCounters, UsageTotals


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """The budget a user has used up and when it frees."""

    window: str  # "day" | "month"
    frees_at: datetime


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A user's use in the current day and month against their budgets (0 = none)."""

    totals: UsageTotals
    day_budget: int
    month_budget: int
    day_ends: datetime
    month_ends: datetime


def billed_tokens(usage: Usage) -> int:
    """The tokens Google bills for one call."""
    return usage.prompt_tokens + usage.output_tokens + usage.thoughts_tokens


class BudgetGuard:
    """Checks and counts each user's Gemini tokens."""

    def __init__(self, usage: UsageCounters, settings: BudgetSettings, clock: Clock) -> None:
        self._usage = usage
        self._settings = settings
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether any budget is set (else :meth:`check` never reads the database)."""
        return bool(self._settings.tokens_per_user_per_day or self._settings.tokens_per_user_per_month)

    def now(self) -> datetime:
        """The guard's clock's time (the windows' reference)."""
        return self._clock.now()

    async def report(self, platform: str, user_id: str) -> UsageReport:
        """The user's use today and this month, with the budgets and when each window ends."""
        now = self._clock.now()
        totals = await self._usage.totals(
            platform, user_id, window_start("day", now), window_start("month", now)
        )
        return UsageReport(
            totals=totals,
            day_budget=self._settings.tokens_per_user_per_day,
            month_budget=self._settings.tokens_per_user_per_month,
            day_ends=window_end("day", now),
            month_ends=window_end("month", now),
        )

    async def check(self, platform: str, user_id: str) -> BudgetRefusal | None:
        """The refusal when the user has used up a budget (the month's first: it frees later)."""
        if not self.enabled:
            return None
        report = await self.report(platform, user_id)
        if report.month_budget and report.totals.month_tokens >= report.month_budget:
            return BudgetRefusal("month", report.month_ends)
        if report.day_budget and report.totals.day_tokens >= report.day_budget:
            return BudgetRefusal("day", report.day_ends)
        return None

    async def count(self, platform: str, user_id: str, display_name: str, usages: list[Usage]) -> None:
        """Count one message and the tokens of its Gemini calls for the user."""
        now = self._clock.now()
        hour = window_start("minute", now).replace(minute=0)
        tokens = sum(billed_tokens(u) for u in usages)
        await self._usage.add(
            platform, user_id, display_name=display_name, hour_start=hour, messages=1, tokens=tokens
        )


def over_budget_text(refusal: BudgetRefusal, now: datetime, language: Language) -> str:
    """The notice of a refused message: which budget, and when it frees."""
    wait = format_wait((refusal.frees_at - now).total_seconds(), language)
    shown = "%Y-%m-%d %H:%M" if refusal.window == "month" else "%H:%M"
    at = refusal.frees_at.astimezone(UTC).strftime(shown)
    return text(language, f"over_budget_{refusal.window}", wait=wait, at=at)

"""The local Gemini quota: caps on HTTP requests per minute, day and month, counted in the database.

Every attempt is counted (Gemini counts retries too). Days and months roll over at midnight US Pacific
(:mod:`bot.quota_windows`). The three windows are counted together in one transaction, all or nothing,
so a refusal on ``day`` leaves ``minute`` and ``month`` as they were; the counters live in the
database (the ``quota_counters`` table, through :meth:`bot.store.QuotaCounters.quota_take`), so restarts and
replicas share them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bot.clock import Clock
from bot.config import QuotaSettings
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.quota_windows import WINDOWS, window_end, window_key
from bot.store import QuotaCounters

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """A request refused because ``window``'s cap of ``limit`` is reached until ``frees_at``."""

    window: str
    limit: int
    frees_at: datetime

    def retry_after(self, now: datetime) -> float:
        """Seconds from ``now`` until the window rolls over."""
        return max(1.0, (self.frees_at - now).total_seconds())


class QuotaGuard:
    """Counts Gemini requests against ``gemini.quota`` and refuses the one that would pass a cap.

    Concurrent requests are counted together (group commit): while one transaction runs, the callers
    that arrive queue up and the next transaction counts all of them at once. Under load this keeps
    the cost at a few transactions per second instead of one write per request contending for
    SQLite's lock, and the caps stay exact.
    """

    def __init__(
        self, counters: QuotaCounters, settings: QuotaSettings, clock: Clock, metrics: Metrics | None = None
    ) -> None:
        self._counters = counters
        self._clock = clock
        self._metrics = metrics
        self.limits: dict[str, int] = {
            "minute": settings.requests_per_minute,
            "day": settings.requests_per_day,
            "month": settings.requests_per_month,
        }
        self._known: dict[str, tuple[str, int]] = {}  # window -> (its key, the count last read)
        self._waiting: list[asyncio.Future[QuotaRefusal | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        if metrics is not None:
            for window, limit in self.limits.items():
                metrics.quota_limit.labels(window).set(limit)

    @property
    def enabled(self) -> bool:
        """Whether any cap is set (with none, nothing is counted here: /stats reads llm_calls)."""
        return any(self.limits.values())

    async def acquire(self) -> QuotaRefusal | None:
        """Count one request in every window, or refuse it (counting nothing) when a cap is full."""
        if not self.enabled:
            return None
        waiter: asyncio.Future[QuotaRefusal | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="quota-flush")
        # A caller cancelled while waiting may still be counted: the error is on the safe side.
        return await asyncio.shield(waiter)

    def known_refusal(self) -> QuotaRefusal | None:
        """The refusal a request would meet now by the counts last read, without asking the database.

        The engine asks before it spends the sender's rate limit, so a message the quota will refuse
        does not count against it (a refused message never counts); a cap another replica filled since
        is still caught by :meth:`acquire`. On a tie the longer window names the refusal (it frees last).
        """
        now = self._clock.now()
        found: QuotaRefusal | None = None
        for window in WINDOWS:
            limit = self.limits[window]
            key, count = self._known.get(window, ("", 0))
            if limit and key == window_key(window, now) and count >= limit:
                found = QuotaRefusal(window, limit, window_end(window, now))
        return found

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._count(len(batch))
            except Exception as exc:
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for waiter, result in zip(batch, results, strict=True):
                if not waiter.done():
                    waiter.set_result(result)

    async def _count(self, wanted: int) -> list[QuotaRefusal | None]:
        """Count up to ``wanted`` requests in one transaction: as many as every cap allows."""
        now = self._clock.now()
        keys = {window: window_key(window, now) for window in WINDOWS}
        granted, tightest, counts = await self._counters.quota_take(keys, self.limits, wanted)
        self._set_used(counts, keys)
        if granted == wanted:
            return [None] * wanted
        refusal = QuotaRefusal(tightest, self.limits[tightest], window_end(tightest, now))
        log.warning(
            "quota.refused",
            window=tightest,
            limit=refusal.limit,
            refused=wanted - granted,
            frees_at=refusal.frees_at.isoformat(),
        )
        return [None] * granted + [refusal] * (wanted - granted)

    async def used(self) -> dict[str, int]:
        """Requests counted in each current window (also refreshes the gauges)."""
        now = self._clock.now()
        keys = {w: window_key(w, now) for w in WINDOWS}
        counts = {w: await self._counters.quota_count(w, keys[w]) for w in WINDOWS}
        self._set_used(counts, keys)
        return counts

    def _set_used(self, counts: dict[str, int], keys: dict[str, str]) -> None:
        self._known = {window: (keys[window], count) for window, count in counts.items()}
        if self._metrics is not None:
            for window, count in counts.items():
                self._metrics.quota_used.labels(window).set(count)

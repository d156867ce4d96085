"""The counters of the local Gemini quota (``quota_counters``), one row per window and window key."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Select, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.tables import quota_counters as _quota

__all__ = ["QuotaCounters"]


@functools.cache
def _quota_counts(windows: int) -> Select[Any]:
    """The counts of ``windows`` (window, key) pairs, locked; built once per number of windows and run
    with parameters ``b_window_<i>``/``b_key_<i>``, as every answer counts its Gemini requests (an
    expanding IN would be compiled again at every call)."""
    pairs = (
        and_(_quota.c.window == bindparam(f"b_window_{i}"), _quota.c.window_start == bindparam(f"b_key_{i}"))
        for i in range(windows)
    )
    return select(_quota.c.window, _quota.c.window_start, _quota.c.count).where(or_(*pairs)).with_for_update()


# Built once and run with parameters, as every answer counts its Gemini requests.
_QUOTA_ADD: Final = (
    update(_quota)
    .where(_quota.c.window == bindparam("b_window"), _quota.c.window_start == bindparam("b_key"))
    .values(count=_quota.c.count + bindparam("b_n"))
)


class _Upserts:
    """The counters' upsert, in the dialect's construct."""

    def __init__(self, insert: Any) -> None:
        self.ensure_quota = insert(_quota).on_conflict_do_nothing(index_elements=["window", "window_start"])


class QuotaCounters(Queries):
    """Counts Gemini requests per window, race-free across tasks and processes."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._upserts = _Upserts(self._insert)

    async def quota_take(
        self, windows: Mapping[str, str], limits: Mapping[str, int], wanted: int
    ) -> tuple[int, str, dict[str, int]]:
        """Count up to ``wanted`` requests in every window at once, as many as every cap allows.

        ``windows`` maps each window to its current key, ``limits`` each window to its cap (0 = none).
        All or nothing per request: what one window refuses is counted in none. Returns how many were
        granted, the window that refused the rest ("" when none did) and the counts now. Race-free
        across tasks and processes: the counter rows are locked (IMMEDIATE on SQLite, FOR UPDATE on
        PostgreSQL) until the transaction commits.
        """
        ensure = [{"window": window, "window_start": key, "count": 0} for window, key in windows.items()]
        counts_stmt = _quota_counts(len(windows))
        wanted_rows: dict[str, str] = {}
        for i, (window, key) in enumerate(windows.items()):
            wanted_rows[f"b_window_{i}"], wanted_rows[f"b_key_{i}"] = window, key
        stmt = self._upserts.ensure_quota

        def counted(conn: Connection) -> dict[tuple[str, str], int]:
            return {(str(w), str(k)): int(n) for w, k, n in conn.execute(counts_stmt, wanted_rows)}

        def take(conn: Connection) -> tuple[int, str, dict[str, int]]:
            found = counted(conn)
            if len(found) < len(windows):  # a window's first request: its row is made, then locked
                conn.execute(stmt, ensure)
                found = counted(conn)
            counts = {window: found[(window, key)] for window, key in windows.items()}
            granted, tightest = wanted, ""
            for window in windows:
                limit = limits.get(window, 0)
                room = max(0, limit - counts[window])
                # On a tie the later (longer) window names the refusal: the rest frees up only when it does.
                if limit > 0 and room < wanted and room <= granted:
                    granted, tightest = room, window
            if granted:
                conn.execute(
                    _QUOTA_ADD,
                    [{"b_window": w, "b_key": key, "b_n": granted} for w, key in windows.items()],
                )
                for window in windows:
                    counts[window] += granted
            return granted, tightest, counts

        return await self.run_write(take)

    async def quota_count(self, window: str, window_start: str) -> int:
        """Requests counted in the window so far."""
        stmt = select(_quota.c.count).where(_quota.c.window == window, _quota.c.window_start == window_start)
        async with self._reader.connect() as conn:
            value = (await conn.execute(stmt)).scalar_one_or_none()
        return int(value or 0)

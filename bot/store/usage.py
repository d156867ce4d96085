"""Each user's Gemini use (``user_usage``): messages and tokens per UTC hour, summed over a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.tables import user_usage as _usage

__all__ = ["TopUser", "UsageCounters", "UsageTotals"]

_c = _usage.c
# Served by the primary key (platform, user_id, hour_start): one range scan over the user's month.
_TOTALS: Final = select(
    func.coalesce(func.sum(case((_c.hour_start >= bindparam("b_day"), _c.messages), else_=0)), 0),
    func.coalesce(func.sum(case((_c.hour_start >= bindparam("b_day"), _c.tokens), else_=0)), 0),
    func.coalesce(func.sum(_c.messages), 0),
    func.coalesce(func.sum(_c.tokens), 0),
).where(
    _c.platform == bindparam("b_platform"),
    _c.user_id == bindparam("b_user"),
    _c.hour_start >= bindparam("b_month"),
)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """A user's messages and tokens in the current day and month."""

    day_messages: int = 0
    day_tokens: int = 0
    month_messages: int = 0
    month_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TopUser:
    """One line of the admins' top users by tokens."""

    platform: str
    user_id: str
    display_name: str
    messages: int
    tokens: int


class UsageCounters(Queries):
    """The ``user_usage`` table."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        insert = self._insert(_usage)
        self._add: Any = insert.on_conflict_do_update(
            index_elements=["platform", "user_id", "hour_start"],
            set_={
                "messages": _c.messages + insert.excluded.messages,
                "tokens": _c.tokens + insert.excluded.tokens,
                "display_name": insert.excluded.display_name,
            },
        )

    async def add(
        self,
        platform: str,
        user_id: str,
        *,
        display_name: str,
        hour_start: datetime,
        messages: int,
        tokens: int,
    ) -> None:
        """Count ``messages`` and ``tokens`` for the user in the hour starting at ``hour_start``."""
        row = {
            "platform": platform,
            "user_id": user_id,
            "hour_start": hour_start,
            "messages": messages,
            "tokens": tokens,
            "display_name": display_name[:128],
        }
        stmt = self._add

        def write(conn: Connection) -> None:
            conn.execute(stmt, row)

        await self.run_write(write)

    async def totals(
        self, platform: str, user_id: str, day_start: datetime, month_start: datetime
    ) -> UsageTotals:
        """The user's counts since ``day_start`` and since ``month_start`` (one indexed query)."""
        params = {"b_platform": platform, "b_user": user_id, "b_day": day_start, "b_month": month_start}
        [row] = await self._read_rows(_TOTALS, params)
        return UsageTotals(*(int(v) for v in row))

    async def top_users(self, since: datetime, limit: int) -> list[TopUser]:
        """The ``limit`` users with the most tokens since ``since``, most first."""
        tokens = func.sum(_c.tokens).label("tokens")
        stmt = (
            select(_c.platform, _c.user_id, func.max(_c.display_name), func.sum(_c.messages), tokens)
            .where(_c.hour_start >= since)
            .group_by(_c.platform, _c.user_id)
            .order_by(tokens.desc(), _c.platform, _c.user_id)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [TopUser(str(p), str(u), str(n or ""), int(m), int(t)) for p, u, n, m, t in rows]

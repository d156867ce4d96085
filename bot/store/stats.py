"""Read-only SQL aggregates for /stats, so it never loads a month of rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.store.database import Queries
from bot.store.records import CallRecord
from bot.store.tables import audit as _audit
from bot.store.tables import conversations as _conversations
from bot.store.tables import inbox as _inbox
from bot.store.tables import llm_calls as _llm_calls
from bot.store.tables import users as _users

__all__ = ["ActivityCounts", "Statistics"]


@dataclass(frozen=True, slots=True)
class ActivityCounts:
    """Activity figures for /stats over one window."""

    messages_answered: int
    messages_failed: int
    active_conversations: int
    active_users: int


class Statistics(Queries):
    """Activity, Gemini calls and audit outcomes over a window."""

    async def calls_since(self, since: datetime) -> list[CallRecord]:
        """Every Gemini call recorded at or after ``since``, oldest first."""
        c = _llm_calls.c
        stmt = (
            select(
                c.at,
                c.platform,
                c.model,
                c.endpoint,
                c.attempt,
                c.outcome,
                c.http_status,
                c.gemini_status,
                c.latency_ms,
                c.prompt_tokens,
                c.output_tokens,
                c.conversation_id,
            )
            .where(c.at >= since)
            .order_by(c.at, c.id)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [CallRecord(*row) for row in rows]

    async def activity_counts(self, since: datetime) -> ActivityCounts:
        """Messages answered/failed, active conversations and users since ``since``."""
        by_status = (
            select(_inbox.c.status, func.count())
            .where(
                _inbox.c.received_at >= since,
                _inbox.c.status.in_(("answered", "failed", "undelivered")),
            )
            .group_by(_inbox.c.status)
        )
        conversations = select(func.count()).where(_conversations.c.last_active_at >= since)
        users = select(func.count()).where(_users.c.last_seen_at >= since)
        async with self._reader.connect() as conn:
            statuses: dict[str, int] = {row[0]: int(row[1]) for row in (await conn.execute(by_status)).all()}
            active_conversations = int((await conn.execute(conversations)).scalar_one())
            active_users = int((await conn.execute(users)).scalar_one())
        return ActivityCounts(
            messages_answered=statuses.get("answered", 0),
            messages_failed=statuses.get("failed", 0) + statuses.get("undelivered", 0),
            active_conversations=active_conversations,
            active_users=active_users,
        )

    # -- operations statistics: read-only SQL aggregates, so /stats never loads a month of rows ---------

    async def call_outcomes(self, since: datetime) -> dict[str, tuple[int, int, int]]:
        """Gemini calls at or after ``since`` by outcome: (calls, prompt tokens, output tokens)."""
        c = _llm_calls.c
        stmt = (
            select(
                c.outcome,
                func.count(),
                func.coalesce(func.sum(c.prompt_tokens), 0),
                func.coalesce(func.sum(c.output_tokens), 0),
            )
            .where(c.at >= since)
            .group_by(c.outcome)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return {str(row[0]): (int(row[1]), int(row[2]), int(row[3])) for row in rows}

    async def call_latency_percentiles(
        self, since: datetime, fractions: Sequence[float]
    ) -> list[float | None]:
        """Exact nearest-rank percentiles of the latency (ms) of Gemini calls at or after ``since``.

        One snapshot: the count, then one indexed range scan + sort per fraction (LIMIT 1 OFFSET rank-1).
        None for each fraction when there were no calls.
        """
        import math

        c = _llm_calls.c
        async with self._reader.connect() as conn:
            total = int((await conn.execute(select(func.count()).where(c.at >= since))).scalar_one())
            values: list[float | None] = []
            for fraction in fractions:
                if total == 0:
                    values.append(None)
                    continue
                rank = min(total, max(1, math.ceil(fraction * total)))
                stmt = (
                    select(c.latency_ms).where(c.at >= since).order_by(c.latency_ms).limit(1).offset(rank - 1)
                )
                value = (await conn.execute(stmt)).scalar_one_or_none()
                values.append(None if value is None else float(value))
        return values

    async def audit_outcomes(self, action: str, since: datetime) -> dict[str, int]:
        """Audit records of ``action`` at or after ``since``, counted by outcome."""
        a = _audit.c
        stmt = select(a.outcome, func.count()).where(a.action == action, a.at >= since).group_by(a.outcome)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return {str(row[0]): int(row[1]) for row in rows}

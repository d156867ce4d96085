"""Read-only SQL aggregates for /stats, so it never loads a month of rows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.database import Queries
from bot.store.records import CallRecord
from bot.store.tables import audit as _audit
from bot.store.tables import conversations as _conversations
from bot.store.tables import inbox as _inbox
from bot.store.tables import llm_calls as _llm_calls
from bot.store.tables import turns as _turns
from bot.store.tables import users as _users

__all__ = ["ActivityCounts", "LatencyBucket", "Statistics", "UserActivity"]


@dataclass(frozen=True, slots=True)
class ActivityCounts:
    """Activity figures for /stats over one window."""

    messages_answered: int
    messages_failed: int
    active_conversations: int
    active_users: int


@dataclass(frozen=True, slots=True)
class LatencyBucket:
    """Gemini calls in one time bucket: how many, and their latency percentiles (ms; None when none)."""

    start: datetime
    calls: int
    percentiles: list[float | None]


@dataclass(frozen=True, slots=True)
class UserActivity:
    """One user's activity for the admin page's users list: messages, tokens, last seen (ids only)."""

    platform: str
    user_id: str
    messages: int
    tokens: int
    last_seen_at: datetime | None


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
        async with self._reader.connect() as conn:
            _, values = await _latency_percentiles(conn, _llm_calls.c.at >= since, fractions)
        return values

    async def call_latency_buckets(
        self, bounds: Sequence[datetime], fractions: Sequence[float]
    ) -> list[LatencyBucket]:
        """For each interval [bounds[k], bounds[k+1]): the Gemini calls and their latency percentiles.

        The same nearest-rank SQL as :meth:`call_latency_percentiles`, bucket by bucket, in one snapshot.
        """
        c = _llm_calls.c
        buckets = []
        async with self._reader.connect() as conn:
            for start, end in itertools.pairwise(bounds):
                calls, values = await _latency_percentiles(conn, (c.at >= start) & (c.at < end), fractions)
                buckets.append(LatencyBucket(start, calls, values))
        return buckets

    async def top_users(self, since: datetime, limit: int) -> list[UserActivity]:
        """The users with the most messages since ``since`` or the most tokens in the exchanges kept.

        Up to ``limit`` by each measure (so at most twice that many), most messages first. Messages come
        from the inbox, tokens from the stored exchanges (kept ``storage.retention`` only).
        """
        i, t, cv, u = _inbox.c, _turns.c, _conversations.c, _users.c
        messages = func.count().label("n")
        tokens = func.coalesce(func.sum(t.prompt_tokens + t.output_tokens), 0).label("n")
        by_messages = select(i.platform, i.user_id, messages).where(i.received_at >= since)
        by_messages = by_messages.group_by(i.platform, i.user_id)
        by_tokens = select(cv.platform, t.user_id, tokens).join(_conversations, cv.id == t.conversation_id)
        by_tokens = by_tokens.group_by(cv.platform, t.user_id)
        async with self._reader.connect() as conn:
            keys: set[tuple[str, str]] = set()
            for stmt in (by_messages, by_tokens):
                top = stmt.order_by(text("n DESC")).limit(limit)
                keys |= {(str(row[0]), str(row[1])) for row in (await conn.execute(top)).all()}
            if not keys:
                return []
            wanted = list(keys)
            counted = {
                (str(r[0]), str(r[1])): int(r[2])
                for r in await conn.execute(by_messages.where(tuple_(i.platform, i.user_id).in_(wanted)))
            }
            spent = {
                (str(r[0]), str(r[1])): int(r[2])
                for r in await conn.execute(by_tokens.where(tuple_(cv.platform, t.user_id).in_(wanted)))
            }
            seen = {
                (str(r[0]), str(r[1])): r[2]
                for r in await conn.execute(
                    select(u.platform, u.user_id, u.last_seen_at).where(
                        tuple_(u.platform, u.user_id).in_(wanted)
                    )
                )
            }
        found = [
            UserActivity(p, uid, counted.get((p, uid), 0), spent.get((p, uid), 0), seen.get((p, uid)))
            for p, uid in keys
        ]
        return sorted(found, key=lambda x: (-x.messages, -x.tokens, x.platform, x.user_id))

    async def audit_outcomes(self, action: str, since: datetime) -> dict[str, int]:
        """Audit records of ``action`` at or after ``since``, counted by outcome."""
        a = _audit.c
        stmt = select(a.outcome, func.count()).where(a.action == action, a.at >= since).group_by(a.outcome)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return {str(row[0]): int(row[1]) for row in rows}


async def _latency_percentiles(
    conn: AsyncConnection, condition: Any, fractions: Sequence[float]
) -> tuple[int, list[float | None]]:
    """The number of Gemini calls matching ``condition`` and their nearest-rank latency percentiles."""
    c = _llm_calls.c
    total = int((await conn.execute(select(func.count()).where(condition))).scalar_one())
    values: list[float | None] = []
    for fraction in fractions:
        if total == 0:
            values.append(None)
            continue
        rank = min(total, max(1, math.ceil(fraction * total)))
        stmt = select(c.latency_ms).where(condition).order_by(c.latency_ms).limit(1).offset(rank - 1)
        value = (await conn.execute(stmt)).scalar_one_or_none()
        values.append(None if value is None else float(value))
    return total, values

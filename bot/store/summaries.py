"""The conversations' running summaries (``conversations.summary``) and the exchanges to fold into them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bot.store.conversations import NO_SUMMARY, Exchange
from bot.store.database import Queries
from bot.store.tables import conversations as _conversations
from bot.store.tables import turns as _turns

__all__ = ["StoredSummary", "Summaries", "clear_summaries_of_user_turns"]

_c = _conversations.c
_SUMMARY: Final = select(_c.summary, _c.summary_from, _c.summary_through).where(_c.id == bindparam("b_id"))


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """A conversation's summary of the exchanges from ``first`` through ``last`` (their creation times)."""

    text: str
    first: datetime
    last: datetime


class Summaries(Queries):
    """Reads and writes the summaries; /reset, /forget and retention clear them (see their parts)."""

    async def summary(self, conversation_id: int) -> StoredSummary | None:
        """The conversation's summary, if it has one (a primary-key lookup)."""
        rows = await self._read_rows(_SUMMARY, {"b_id": conversation_id})
        row = rows[0] if rows else None
        if row is None or row.summary is None or row.summary_from is None or row.summary_through is None:
            return None
        return StoredSummary(row.summary, row.summary_from, row.summary_through)

    async def exchanges_after(self, conversation_id: int, after: datetime, limit: int) -> list[Exchange]:
        """Up to ``limit`` exchanges created after ``after``, the newest ones, oldest first."""
        stmt = (
            select(_turns.c.user_text, _turns.c.model_text, _turns.c.created_at)
            .where(_turns.c.conversation_id == conversation_id, _turns.c.created_at > after)
            .order_by(_turns.c.created_at.desc(), _turns.c.id.desc())
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [Exchange(r.user_text, r.model_text, r.created_at) for r in reversed(rows)]

    async def save_summary(
        self,
        conversation_id: int,
        text: str,
        previous: StoredSummary | None,
        folded: Sequence[Exchange],
    ) -> bool:
        """Store ``text`` as the summary of ``previous`` and ``folded``, unless either changed meanwhile.

        Written only while the previous summary is still the stored one and every folded exchange is
        still stored: a /reset or /forget (or retention) in the meantime wins, so no summary is kept
        of erased text. Returns whether it was written.
        """
        first, last = folded[0].created_at, folded[-1].created_at
        still_there = (
            select(func.count())
            .select_from(_turns)
            .where(
                _turns.c.conversation_id == conversation_id,
                _turns.c.created_at >= first,
                _turns.c.created_at <= last,
            )
            .scalar_subquery()
        )
        unchanged: ColumnElement[bool]
        if previous is None:
            unchanged = _c.summary_through.is_(None)
        else:
            unchanged = and_(_c.summary_through == previous.last, _c.summary_from == previous.first)
        stmt = (
            update(_conversations)
            .where(_c.id == conversation_id, unchanged, still_there == len(folded))
            .values(summary=text, summary_from=previous.first if previous else first, summary_through=last)
        )
        return await self.run_write(lambda conn: int(conn.execute(stmt).rowcount) == 1)


def clear_summaries_of_user_turns(conn: Connection, platform: str, user_id: str) -> None:
    """Drop every summary that may hold text of this user's exchanges (before /forget deletes them)."""
    theirs = select(_turns.c.conversation_id).where(_turns.c.user_id == user_id)
    conn.execute(
        update(_conversations)
        .where(_c.platform == platform, _c.id.in_(theirs), _c.summary_through.is_not(None))
        .values(**NO_SUMMARY)
    )

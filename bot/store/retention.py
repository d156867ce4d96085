"""Retention: deleting what the retention policy says must go, in batches of short transactions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Table, delete, select, update
from sqlalchemy.engine import Connection

from bot.store.conversations import NO_SUMMARY
from bot.store.database import Queries
from bot.store.media import erase_turns
from bot.store.tables import answer_messages as _answer_messages
from bot.store.tables import audit as _audit
from bot.store.tables import conversations as _conversations
from bot.store.tables import inbox as _inbox
from bot.store.tables import llm_calls as _llm_calls
from bot.store.tables import turns as _turns
from bot.store.tables import votes as _votes

__all__ = ["Retention"]

# Retention deletes in batches so one purge never holds SQLite's write lock for long.
PURGE_BATCH: Final = 2000


class Retention(Queries):
    """Deletes old rows of ``turns`` (with their ``media``), ``inbox`` (with the votes and answer message
    ids kept with it), ``audit`` and ``llm_calls``."""

    async def purge(
        self,
        *,
        turns_before: datetime,
        inbox_before: datetime,
        audit_before: datetime,
        calls_before: datetime | None = None,
        inbox_targets_before: datetime | None = None,
    ) -> dict[str, int]:
        """Delete rows older than the given times; returns the count deleted per table.

        ``inbox_targets_before`` clears the inbox rows' reply targets (chat, thread, reply ids, language)
        while the rows themselves, which hold no text, stay until ``inbox_before`` for statistics.

        Deletes run in batches of short transactions. On SQLite, after turns were deleted, the WAL is
        checkpointed and truncated so the text is not recoverable from the database files (deleted
        content is zeroed in place thanks to ``secure_delete``). On PostgreSQL dead tuples stay on disk
        until (auto)vacuum reclaims them.
        """
        counts = {
            "turns": await self._erase_turns(turns_before),
            "summaries": await self._clear_summaries(turns_before),
            "inbox": await self._delete_batched(_inbox, _inbox.c.received_at < inbox_before),
            "votes": await self._delete_batched(_votes, _votes.c.voted_at < inbox_before),
            "answer_messages": await self._delete_batched(
                _answer_messages, _answer_messages.c.created_at < inbox_before
            ),
            "inbox_targets": 0,
            "audit": await self._delete_batched(_audit, _audit.c.at < audit_before),
            "llm_calls": 0,
        }
        if calls_before is not None:
            counts["llm_calls"] = await self._delete_batched(_llm_calls, _llm_calls.c.at < calls_before)
        if inbox_targets_before is not None:
            counts["inbox_targets"] = await self._forget_reply_targets(inbox_targets_before)
        if counts["turns"]:
            await self._checkpoint()
        return counts

    async def _erase_turns(self, before: datetime) -> int:
        """Old exchanges with their files (their Files API copies queued for deletion), in batches."""
        total = 0
        while True:
            rowcount = await self.run_write(_erase_batch(before), bulk=True)
            total += rowcount
            if rowcount < PURGE_BATCH:
                return total

    async def _clear_summaries(self, before: datetime) -> int:
        # A summary is text of its exchanges: it goes when the oldest of them would have.
        stmt = update(_conversations).where(_conversations.c.summary_from < before).values(**NO_SUMMARY)
        return await self.run_write(_rowcount_of(stmt), bulk=True)

    async def _forget_reply_targets(self, before: datetime) -> int:
        total = 0
        c = _inbox.c
        condition = (c.received_at < before) & ((c.chat_key.is_not(None)) | (c.reply_to.is_not(None)))
        while True:
            batch = select(c.id).where(condition).limit(PURGE_BATCH).scalar_subquery()
            cleared = update(_inbox).where(c.id.in_(batch))
            stmt = cleared.values(chat_key=None, thread_key=None, reply_to=None, language=None)
            rowcount = await self.run_write(_rowcount_of(stmt), bulk=True)
            total += rowcount
            if rowcount < PURGE_BATCH:
                return total

    async def _delete_batched(self, table: Table, condition: Any) -> int:
        total = 0
        while True:
            batch = select(table.c.id).where(condition).limit(PURGE_BATCH).scalar_subquery()
            stmt = delete(table).where(table.c.id.in_(batch))
            rowcount = await self.run_write(_rowcount_of(stmt), bulk=True)
            total += rowcount
            if rowcount < PURGE_BATCH:
                return total


def _erase_batch(before: datetime) -> Callable[[Connection], int]:
    """A write erasing up to :data:`PURGE_BATCH` exchanges created before ``before``."""
    batch = (
        select(_turns.c.id)
        .where(_turns.c.created_at < before)
        .order_by(_turns.c.id)
        .limit(PURGE_BATCH)
        .scalar_subquery()
    )
    return lambda conn: erase_turns(conn, _turns.c.id.in_(batch))


def _rowcount_of(stmt: Any) -> Callable[[Connection], int]:
    """A write that runs ``stmt`` and returns how many rows it touched."""
    return lambda conn: int(conn.execute(stmt).rowcount)

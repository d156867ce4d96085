"""The inbox: one row per platform event, for deduplication, answer state and crash follow-ups."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.tables import inbox as _inbox
from bot.store.users import touch_user_upsert, user_row

__all__ = ["AnswerStart", "EventInbox", "Unanswered"]

# The statements of every message, built once and run with parameters: building a statement and its
# cache key costs more CPU than SQLite takes to run it (docs/benchmarks.md).
_UNFINISHED: Final = ("received", "answering")
"""Inbox states of a message not answered yet: claimed, or being answered (PostgreSQL only)."""
_FINISH_EVENT: Final = (
    update(_inbox)
    .where(
        _inbox.c.platform == bindparam("b_platform"),
        _inbox.c.event_id == bindparam("b_event_id"),
        # An 'orphaned' row was followed up: its sender was told to resend, and that stays the answer.
        _inbox.c.status.in_(_UNFINISHED),
    )
    .values(status=bindparam("b_status"), answered_at=bindparam("b_at"))
)
_START_ANSWER: Final = (
    update(_inbox)
    .where(
        _inbox.c.platform == bindparam("b_platform"),
        _inbox.c.event_id == bindparam("b_event_id"),
        _inbox.c.status == "received",
    )
    .values(status="answering", answered_at=bindparam("b_at"))
)


def _unfinished_since(since: Any, inbox: Any = _inbox) -> Any:
    """Unfinished and not stale: received, or started answering, at or after ``since``."""
    c = inbox.c
    return or_(
        and_(c.status == "received", c.received_at >= since),
        and_(c.status == "answering", c.answered_at >= since),
    )


_EARLIER: Final = _inbox.alias("earlier")
# The inbox id is the arrival order (the order the platform's deliveries were acknowledged in): a message
# starts only when no earlier message of its conversation is still unfinished. Unfinished rows are few (the
# messages in flight), found through ix_inbox_status_received_at.
_START_ANSWER_IN_ORDER: Final = _START_ANSWER.where(
    ~exists().where(
        _EARLIER.c.platform == _inbox.c.platform,
        _EARLIER.c.chat_key == _inbox.c.chat_key,
        _EARLIER.c.thread_key == _inbox.c.thread_key,
        _EARLIER.c.id < _inbox.c.id,
        _unfinished_since(bindparam("b_since"), _EARLIER),
    )
)
_STATUS: Final = select(_inbox.c.status).where(
    _inbox.c.platform == bindparam("b_platform"), _inbox.c.event_id == bindparam("b_event_id")
)


class AnswerStart(Enum):
    """What :meth:`EventInbox.start_answer_in_order` found."""

    STARTED = "started"  # the row is now 'answering'
    TAKEN = "taken"  # a follow-up took it over (or it is gone): do not answer
    WAITING = "waiting"  # an earlier message of the conversation is unfinished: try again later


def _unfinished_before(before: datetime) -> Any:
    """Never started and received before ``before``, or started answering before it."""
    c = _inbox.c
    return or_(
        and_(c.status == "received", c.received_at < before),
        and_(c.status == "answering", c.answered_at < before),
    )


_FINISH_EVENT_IN: Final = _FINISH_EVENT.values(conversation_id=bindparam("b_conversation_id"))


class _Upserts:
    """The inbox's upserts (and the user touch of a claim), in the dialect's construct."""

    def __init__(self, insert: Any) -> None:
        self.claim_event = insert(_inbox).on_conflict_do_nothing(index_elements=["platform", "event_id"])
        self.touch_user = touch_user_upsert(insert)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """An event that was accepted but never answered (the process died): where to follow it up."""

    platform: str
    event_id: str
    user_id: str
    chat_key: str | None
    thread_key: str
    reply_to: dict[str, str]
    language: str | None
    received_at: datetime


class EventInbox(Queries):
    """The ``inbox`` table: an event claimed, started, answered, failed or taken over ('orphaned')."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._upserts = _Upserts(self._insert)

    async def claim_event(
        self,
        platform: str,
        event_id: str,
        user_id: str,
        now: datetime,
        *,
        touch_user: bool = False,
        language: str | None = None,
        chat_key: str | None = None,
        thread_key: str | None = None,
        reply_to: Mapping[str, str] | None = None,
    ) -> bool:
        """Record a received event; False when (platform, event_id) was already recorded.

        With ``touch_user`` the sender is also recorded as seen (see :meth:`.Users.touch_user`), in the same
        transaction: one write per message start instead of two. ``chat_key``, ``thread_key``,
        ``reply_to`` and ``language`` say where to answer should the process die before it does.
        """
        row = {
            "platform": platform,
            "event_id": event_id,
            "user_id": user_id,
            "status": "received",
            "received_at": now,
            "chat_key": chat_key,
            "thread_key": thread_key,
            "reply_to": json.dumps(dict(reply_to), sort_keys=True) if reply_to else None,
            "language": language[:16] if language else None,
        }
        user = user_row(platform, user_id, language, now) if touch_user else None
        upserts = self._upserts

        def claim(conn: Connection) -> bool:
            claimed = conn.execute(upserts.claim_event, row).rowcount == 1
            if claimed and user is not None:
                conn.execute(upserts.touch_user, user)
            return claimed

        # At once: a batch of received updates is recorded one after another before it is acknowledged.
        return await self.run_write(claim, at_once=True)

    async def unanswered_events(
        self, platform: str, received_before: datetime, limit: int = 500
    ) -> list[Unanswered]:
        """Events unfinished since before ``received_before``, oldest first: still 'received' (never
        started) or 'answering' (see :meth:`start_answer`) since then, and with a chat to answer in."""
        stmt = (
            select(
                _inbox.c.event_id,
                _inbox.c.user_id,
                _inbox.c.chat_key,
                _inbox.c.thread_key,
                _inbox.c.reply_to,
                _inbox.c.language,
                _inbox.c.received_at,
            )
            # A row without a chat has nowhere to follow up (an inline query, a reply target forgotten).
            .where(
                _inbox.c.platform == platform,
                _unfinished_before(received_before),
                _inbox.c.chat_key.is_not(None),
            )
            .order_by(_inbox.c.received_at)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Unanswered(
                platform=platform,
                event_id=row.event_id,
                user_id=row.user_id,
                chat_key=row.chat_key,
                thread_key=row.thread_key or "",
                reply_to=json.loads(row.reply_to) if row.reply_to else {},
                language=row.language,
                received_at=row.received_at,
            )
            for row in rows
        ]

    async def set_reply_to(self, platform: str, event_id: str, reply_to: Mapping[str, str]) -> None:
        """Replace where an event still unanswered is answered (e.g. with the message its answer is in)."""
        stmt = (
            update(_inbox)
            .where(
                _inbox.c.platform == platform,
                _inbox.c.event_id == event_id,
                _inbox.c.status.in_(_UNFINISHED),
            )
            .values(reply_to=json.dumps(dict(reply_to), sort_keys=True))
        )
        await self.run_write(lambda conn: conn.execute(stmt))

    async def take_unanswered(self, platform: str, event_id: str, now: datetime, before: datetime) -> bool:
        """Atomically move an event unfinished since before ``before`` to 'orphaned'; False when it was
        finished, taken by someone else, or started answering since (:meth:`start_answer`)."""
        stmt = (
            update(_inbox)
            .where(
                _inbox.c.platform == platform,
                _inbox.c.event_id == event_id,
                _unfinished_before(before),
            )
            .values(status="orphaned", answered_at=now)
        )
        return await self.run_write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def start_answer(self, platform: str, event_id: str, now: datetime) -> bool:
        """Mark a claimed event 'answering'; False when a follow-up took it over meanwhile ('orphaned').

        Only where several processes share the database (PostgreSQL): there a replica's follow-up may take
        a message that waited long behind its chat on another replica, and whichever comes first wins, so
        the sender gets one answer. On SQLite one process owns the database and follow-ups take only rows
        of earlier processes, so this is a no-op (no extra write per message).
        """
        if self._writer is not None:
            return True
        stmt = _START_ANSWER
        params = {"b_platform": platform, "b_event_id": event_id, "b_at": now}
        return await self.run_write(lambda conn: conn.execute(stmt, params).rowcount == 1)

    async def start_answer_in_order(
        self, platform: str, event_id: str, now: datetime, stale_before: datetime
    ) -> AnswerStart:
        """:meth:`start_answer`, only once every earlier inbox row of the message's conversation (by id:
        arrival order) is finished or stale (unfinished since before ``stale_before``: a follow-up takes
        it over, so nothing waits forever). On SQLite, whose one process keeps the arrival order
        itself, it starts at once, without a query.
        """
        if self._writer is not None:
            return AnswerStart.STARTED
        params = {"b_platform": platform, "b_event_id": event_id, "b_at": now, "b_since": stale_before}
        status_params = {"b_platform": platform, "b_event_id": event_id}

        def start(conn: Connection) -> AnswerStart:
            if conn.execute(_START_ANSWER_IN_ORDER, params).rowcount == 1:
                return AnswerStart.STARTED
            status = conn.execute(_STATUS, status_params).scalar_one_or_none()
            return AnswerStart.WAITING if status == "received" else AnswerStart.TAKEN

        return await self.run_write(start)

    async def finish_event(
        self, platform: str, event_id: str, status: str, now: datetime, conversation_id: int | None = None
    ) -> None:
        """Mark an event finished: 'answered', 'failed' or 'undelivered' (the platform refused the answer)."""
        params: dict[str, object] = {
            "b_platform": platform,
            "b_event_id": event_id,
            "b_status": status,
            "b_at": now,
        }
        stmt = _FINISH_EVENT
        if conversation_id is not None:
            stmt, params["b_conversation_id"] = _FINISH_EVENT_IN, conversation_id
        await self.run_write(lambda conn: conn.execute(stmt, params))

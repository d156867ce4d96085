"""The queries the bot needs, behind one :class:`Store` shared by every task.

Each method runs its own short transaction on a pooled connection (Core statements, no ORM identity
map), so the store is safe to call from many concurrent tasks and processes. Writes begin IMMEDIATE on
SQLite (see :mod:`bot.store.db`); read-only methods use deferred snapshot transactions so they never
wait for writers. Upserts use the dialect's own ``INSERT .. ON CONFLICT`` (SQLite and PostgreSQL share
the syntax), chosen by dialect name.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from sqlalchemy import Table, and_, bindparam, delete, exists, func, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.observability.logs import REDACTOR, get_logger
from bot.store.db import create_engine, is_sqlite, read_only, sqlite_writer
from bot.store.models import AuditRow, BlockedUser, Conversation, Inbox, LlmCall, QuotaCounter, Turn, User

T = TypeVar("T")

log = get_logger(__name__)

__all__ = [
    "ActivityCounts",
    "AuditRecord",
    "CallRecord",
    "Exchange",
    "LatencyBucket",
    "Store",
    "Unanswered",
    "UserUsage",
]

# Retention deletes in batches so one purge never holds SQLite's write lock for long.
_PURGE_BATCH: Final = 2000
# A busy WAL checkpoint (a reader in the way) is tried again this many times, a little later each time.
_CHECKPOINT_TRIES: Final = 5
# Known conversation ids kept in memory; bounded so a million conversations don't grow the process.
_CONVERSATION_CACHE: Final = 10_000

_conversations: Final[Table] = Conversation.__table__  # type: ignore[assignment]
_turns: Final[Table] = Turn.__table__  # type: ignore[assignment]
_inbox: Final[Table] = Inbox.__table__  # type: ignore[assignment]
_llm_calls: Final[Table] = LlmCall.__table__  # type: ignore[assignment]
_users: Final[Table] = User.__table__  # type: ignore[assignment]
_audit: Final[Table] = AuditRow.__table__  # type: ignore[assignment]
_quota: Final[Table] = QuotaCounter.__table__  # type: ignore[assignment]
_blocked: Final[Table] = BlockedUser.__table__  # type: ignore[assignment]


# The statements of every message, built once and run with parameters: building a statement and its
# cache key costs more CPU than SQLite takes to run it (docs/benchmarks.md). The upserts, whose construct
# differs by dialect, are built per Store in _Upserts.
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


def _unfinished_before(before: datetime) -> Any:
    """Never started and received before ``before``, or started answering before it."""
    c = _inbox.c
    return or_(
        and_(c.status == "received", c.received_at < before),
        and_(c.status == "answering", c.answered_at < before),
    )


_FINISH_EVENT_IN: Final = _FINISH_EVENT.values(conversation_id=bindparam("b_conversation_id"))
_TOUCH_CONVERSATION: Final = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("b_id"))
    .values(last_active_at=bindparam("b_at"))
)
_HISTORY: Final = (
    # Served by ix_turns_conversation_id_created_at: a backward range scan that stops after `limit`.
    select(_turns.c.user_text, _turns.c.model_text, _turns.c.created_at)
    .where(_turns.c.conversation_id == bindparam("b_id"), _turns.c.created_at >= bindparam("b_since"))
    .order_by(_turns.c.created_at.desc(), _turns.c.id.desc())
    .limit(bindparam("b_limit"))
)
_INSERT_TURN: Final = _turns.insert()
_INSERT_CALLS: Final = _llm_calls.insert()
_INSERT_AUDIT: Final = _audit.insert()
_QUOTA_COUNTS: Final = (
    select(_quota.c.window, _quota.c.window_start, _quota.c.count)
    .where(tuple_(_quota.c.window, _quota.c.window_start).in_(bindparam("b_windows", expanding=True)))
    .with_for_update()
)
_QUOTA_ADD: Final = (
    update(_quota)
    .where(_quota.c.window == bindparam("b_window"), _quota.c.window_start == bindparam("b_key"))
    .values(count=_quota.c.count + bindparam("b_n"))
)


class _Upserts:
    """The INSERT .. ON CONFLICT statements of every message, in the dialect's construct."""

    def __init__(self, insert: Any) -> None:
        self.claim_event = insert(_inbox).on_conflict_do_nothing(index_elements=["platform", "event_id"])
        users = insert(_users)
        self.touch_user = users.on_conflict_do_update(
            index_elements=["platform", "user_id"],
            set_={
                "last_seen_at": users.excluded.last_seen_at,
                "language": func.coalesce(users.excluded.language, _users.c.language),
                "unreachable_at": None,
            },
        )
        self.ensure_quota = insert(_quota).on_conflict_do_nothing(index_elements=["window", "window_start"])
        conversations = insert(_conversations)
        self.conversation = conversations.on_conflict_do_update(
            index_elements=["platform", "chat_key", "thread_key"],
            set_={"last_active_at": conversations.excluded.last_active_at},
        ).returning(_conversations.c.id)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One stored exchange, as context for the next request."""

    user_text: str
    model_text: str
    created_at: datetime


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


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt against Gemini."""

    at: datetime
    platform: str
    model: str
    endpoint: str
    attempt: int
    outcome: str
    http_status: int | None
    gemini_status: str | None
    latency_ms: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    conversation_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action; ``params`` must already be redacted."""

    at: datetime
    platform: str
    actor_id: str
    action: str
    params: Mapping[str, object]
    model: str | None = None
    outcome: str | None = None


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
class UserUsage:
    """One user's figures for the admin page (ids and counts only)."""

    platform: str
    user_id: str
    messages: int
    tokens: int
    last_seen_at: datetime | None


class Store:
    """gembot's database access: every query the core needs."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use ``engine`` (shared; the caller or :meth:`close` disposes of it)."""
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
        self._engine = engine
        self._reader = read_only(engine)
        # SQLite allows one writer: this process's writes run on one thread, committed in groups.
        self._writer = sqlite_writer(engine) if is_sqlite(engine) else None
        self._conversation_ids: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        # Both dialects spell upserts INSERT .. ON CONFLICT; each has its own construct for it.
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._upserts = _Upserts(self._insert)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Create an engine for ``url`` (the schema is not migrated here)."""
        return cls(create_engine(url))

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine."""
        return self._engine

    async def run_write(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` (synchronous statements on a Connection) in one write transaction; its result.

        On SQLite it runs on the writer thread, possibly in a transaction shared with other writes (each
        in its own savepoint); on PostgreSQL in a transaction of its own.
        """
        if self._writer is not None:
            return await self._writer.run(op)
        async with self._engine.begin() as conn:
            return await conn.run_sync(op)

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        if self._writer is not None:
            await self._writer.aclose()
        await self._engine.dispose()

    async def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` (for /readyz)."""
        try:
            async with self._reader.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    # -- inbox ---------------------------------------------------------------------------------------

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

        With ``touch_user`` the sender is also recorded as seen (see :meth:`touch_user`), in the same
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
        user = self._user_row(platform, user_id, language, now) if touch_user else None
        upserts = self._upserts

        def claim(conn: Connection) -> bool:
            claimed = conn.execute(upserts.claim_event, row).rowcount == 1
            if claimed and user is not None:
                conn.execute(upserts.touch_user, user)
            return claimed

        return await self.run_write(claim)

    async def unanswered_events(
        self, platform: str, received_before: datetime, limit: int = 500
    ) -> list[Unanswered]:
        """Events unfinished since before ``received_before``, oldest first: still 'received' (never
        started) or 'answering' (see :meth:`start_answer`) since then."""
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
            .where(_inbox.c.platform == platform, _unfinished_before(received_before))
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

    async def finish_event(
        self, platform: str, event_id: str, status: str, now: datetime, conversation_id: int | None = None
    ) -> None:
        """Mark an event 'answered' or 'failed'."""
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

    # -- conversations -------------------------------------------------------------------------------

    async def conversation_id(self, platform: str, chat_key: str, thread_key: str, now: datetime) -> int:
        """The id of this conversation, created if new; its ``last_active_at`` becomes ``now``.

        Ids never change (conversations are re-keyed only by :meth:`move_chat`, which clears the cache), so
        a bounded cache saves the write for known conversations; :meth:`save_exchange` keeps
        ``last_active_at`` current for them.
        """
        key = (platform, chat_key, thread_key)
        cached = self._conversation_ids.get(key)
        if cached is not None:
            self._conversation_ids.move_to_end(key)
            return cached
        row = {
            "platform": platform,
            "chat_key": chat_key,
            "thread_key": thread_key,
            "created_at": now,
            "last_active_at": now,
        }
        stmt = self._upserts.conversation
        conversation_id = await self.run_write(lambda conn: int(conn.execute(stmt, row).scalar_one()))
        self._conversation_ids[key] = conversation_id
        if len(self._conversation_ids) > _CONVERSATION_CACHE:
            self._conversation_ids.popitem(last=False)
        return conversation_id

    # Added for the Slack adapter (issue 5): a thread message without a mention is addressed to the bot
    # only when the bot already holds that thread's conversation. Read-only; creates nothing.
    async def conversation_exists(self, platform: str, chat_key: str, thread_key: str) -> bool:
        """Whether a conversation row exists for (platform, chat_key, thread_key)."""
        stmt = select(_conversations.c.id).where(
            _conversations.c.platform == platform,
            _conversations.c.chat_key == chat_key,
            _conversations.c.thread_key == thread_key,
        )
        async with self._reader.connect() as conn:
            return (await conn.execute(stmt.limit(1))).first() is not None

    async def move_chat(self, platform: str, old_chat_key: str, new_chat_key: str) -> int:
        """Re-key a chat's conversations (a Telegram group that became a supergroup); returns how many moved.

        A conversation the new chat already has (a message there was answered first) is left as it is.
        """
        other = _conversations.alias("other")
        taken = exists(
            select(other.c.id).where(
                other.c.platform == platform,
                other.c.chat_key == new_chat_key,
                other.c.thread_key == _conversations.c.thread_key,
            )
        )
        stmt = (
            update(_conversations)
            .where(_conversations.c.platform == platform, _conversations.c.chat_key == old_chat_key, ~taken)
            .values(chat_key=new_chat_key)
        )
        moved = await self.run_write(lambda conn: int(conn.execute(stmt).rowcount or 0))
        self._conversation_ids.clear()
        return moved

    async def history(self, conversation_id: int, *, limit: int, since: datetime) -> list[Exchange]:
        """The latest ``limit`` exchanges created at or after ``since``, oldest first."""
        if limit <= 0:
            return []
        params = {"b_id": conversation_id, "b_since": since, "b_limit": limit}
        async with self._reader.connect() as conn:
            rows = (await conn.execute(_HISTORY, params)).all()
        return [Exchange(row.user_text, row.model_text, row.created_at) for row in reversed(rows)]

    async def save_exchange(
        self,
        *,
        conversation_id: int,
        user_id: str,
        user_text: str,
        model_text: str,
        prompt_tokens: int,
        output_tokens: int,
        finish_reason: str,
        model: str,
        now: datetime,
        calls: Sequence[CallRecord] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> None:
        """Store a finished exchange with its Gemini calls and audit records, in one transaction."""
        turn = {
            "conversation_id": conversation_id,
            "user_id": user_id,
            "user_text": user_text,
            "model_text": model_text,
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "finish_reason": finish_reason,
            "model": model,
            "created_at": now,
        }
        touch = {"b_id": conversation_id, "b_at": now}

        def save(conn: Connection) -> None:
            conn.execute(_INSERT_TURN, turn)
            conn.execute(_TOUCH_CONVERSATION, touch)
            _insert_calls_and_audit(conn, calls, audit)

        await self.run_write(save)

    async def record_calls(self, calls: Sequence[CallRecord], audit: Sequence[AuditRecord] = ()) -> None:
        """Store Gemini calls (and audit records) of an answer that produced no exchange."""
        if not calls and not audit:
            return
        await self.run_write(lambda conn: _insert_calls_and_audit(conn, calls, audit))

    async def record_audit(self, audit: Sequence[AuditRecord]) -> None:
        """Store audit records."""
        if not audit:
            return
        await self.run_write(lambda conn: _insert_calls_and_audit(conn, (), audit))

    async def reset_conversation(self, conversation_id: int) -> int:
        """Delete this conversation's exchanges; returns how many."""
        stmt = delete(_turns).where(_turns.c.conversation_id == conversation_id)
        return await self.run_write(lambda conn: int(conn.execute(stmt).rowcount))

    # -- users ---------------------------------------------------------------------------------------

    async def touch_user(self, platform: str, user_id: str, language: str | None, now: datetime) -> None:
        """Record that the user was seen now (a known language is kept when none is given).

        A user who writes to the bot is reachable again, so ``unreachable_at`` is cleared.
        """
        row, stmt = self._user_row(platform, user_id, language, now), self._upserts.touch_user
        await self.run_write(lambda conn: conn.execute(stmt, row))

    @staticmethod
    def _user_row(platform: str, user_id: str, language: str | None, now: datetime) -> dict[str, object]:
        return {
            "platform": platform,
            "user_id": user_id,
            "language": language,
            "first_seen_at": now,
            "last_seen_at": now,
        }

    async def forget_user(self, platform: str, user_id: str, now: datetime) -> int:
        """Erase every exchange this user started on this platform, and their inbox rows.

        Sets ``users.forgotten_at``; returns the number of exchanges deleted. On SQLite the WAL is
        checkpointed afterwards, so the erased text is gone from the files too (secure_delete zeroes it).
        """
        in_platform = exists().where(
            _conversations.c.id == _turns.c.conversation_id, _conversations.c.platform == platform
        )
        ins = self._insert(_users).values(
            platform=platform, user_id=user_id, first_seen_at=now, last_seen_at=now, forgotten_at=now
        )
        mark = ins.on_conflict_do_update(
            index_elements=["platform", "user_id"], set_={"forgotten_at": ins.excluded.forgotten_at}
        )

        def erase(conn: Connection) -> int:
            deleted = conn.execute(delete(_turns).where(_turns.c.user_id == user_id, in_platform))
            conn.execute(delete(_inbox).where(_inbox.c.platform == platform, _inbox.c.user_id == user_id))
            conn.execute(mark)
            return int(deleted.rowcount)

        count = await self.run_write(erase)
        if count:
            await self._checkpoint()
        return count

    # -- blocked users (the admin page) ---------------------------------------------------------------

    async def block_user(self, platform: str, user_id: str, now: datetime, audit: AuditRecord) -> bool:
        """Block a user and record ``audit``, in one transaction; False when they already were blocked."""
        row = {"platform": platform, "user_id": user_id, "blocked_at": now, "blocked_by": audit.actor_id}
        stmt = (
            self._insert(_blocked).values(row).on_conflict_do_nothing(index_elements=["platform", "user_id"])
        )

        def block(conn: Connection) -> bool:
            added = conn.execute(stmt).rowcount == 1
            _insert_calls_and_audit(conn, (), [audit])
            return added

        return await self.run_write(block)

    async def unblock_user(self, platform: str, user_id: str, audit: AuditRecord) -> bool:
        """Unblock a user and record ``audit``, in one transaction; False when they were not blocked."""
        stmt = delete(_blocked).where(_blocked.c.platform == platform, _blocked.c.user_id == user_id)

        def unblock(conn: Connection) -> bool:
            removed = conn.execute(stmt).rowcount == 1
            _insert_calls_and_audit(conn, (), [audit])
            return removed

        return await self.run_write(unblock)

    async def blocked_users(self) -> dict[tuple[str, str], datetime]:
        """Every blocked (platform, user id), with when it was blocked."""
        b = _blocked.c
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(b.platform, b.user_id, b.blocked_at))).all()
        return {(str(row[0]), str(row[1])): row[2] for row in rows}

    async def top_users(self, since: datetime, limit: int) -> list[UserUsage]:
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
            UserUsage(p, uid, counted.get((p, uid), 0), spent.get((p, uid), 0), seen.get((p, uid)))
            for p, uid in keys
        ]
        return sorted(found, key=lambda x: (-x.messages, -x.tokens, x.platform, x.user_id))

    # -- retention -----------------------------------------------------------------------------------

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
            "turns": await self._delete_batched(_turns, _turns.c.created_at < turns_before),
            "inbox": await self._delete_batched(_inbox, _inbox.c.received_at < inbox_before),
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

    async def _forget_reply_targets(self, before: datetime) -> int:
        total = 0
        c = _inbox.c
        condition = (c.received_at < before) & ((c.chat_key.is_not(None)) | (c.reply_to.is_not(None)))
        while True:
            batch = select(c.id).where(condition).limit(_PURGE_BATCH).scalar_subquery()
            cleared = update(_inbox).where(c.id.in_(batch))
            stmt = cleared.values(chat_key=None, thread_key=None, reply_to=None, language=None)
            rowcount = await self.run_write(_rowcount_of(stmt))
            total += rowcount
            if rowcount < _PURGE_BATCH:
                return total

    async def _delete_batched(self, table: Table, condition: Any) -> int:
        total = 0
        while True:
            batch = select(table.c.id).where(condition).limit(_PURGE_BATCH).scalar_subquery()
            stmt = delete(table).where(table.c.id.in_(batch))
            rowcount = await self.run_write(_rowcount_of(stmt))
            total += rowcount
            if rowcount < _PURGE_BATCH:
                return total

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (SQLite only; outside any transaction)."""
        if not is_sqlite(self._engine):
            return
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            for attempt in range(_CHECKPOINT_TRIES):
                # The aiosqlite connection itself: no SQLAlchemy BEGIN, as a checkpoint cannot run in one.
                cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = await cursor.fetchone()
                await cursor.close()
                if row is None or not row[0]:
                    return
                # Busy: a reader still uses the WAL. Until it is truncated, erased text stays in it.
                await asyncio.sleep(0.05 * (attempt + 1))
            log.warning("store.checkpoint_busy", tries=_CHECKPOINT_TRIES)

    # -- quota ---------------------------------------------------------------------------------------

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
        wanted_rows = {"b_windows": list(windows.items())}
        stmt = self._upserts.ensure_quota

        def take(conn: Connection) -> tuple[int, str, dict[str, int]]:
            conn.execute(stmt, ensure)
            found = {(str(w), str(k)): int(n) for w, k, n in conn.execute(_QUOTA_COUNTS, wanted_rows)}
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

    # -- statistics ----------------------------------------------------------------------------------

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

    async def stats_counts(self, since: datetime) -> ActivityCounts:
        """Messages answered/failed, active conversations and users since ``since``."""
        by_status = (
            select(_inbox.c.status, func.count())
            .where(_inbox.c.received_at >= since, _inbox.c.status.in_(("answered", "failed")))
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
            messages_failed=statuses.get("failed", 0),
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


def _rowcount_of(stmt: Any) -> Callable[[Connection], int]:
    """A write that runs ``stmt`` and returns how many rows it touched."""
    return lambda conn: int(conn.execute(stmt).rowcount)


def _params_json(params: Mapping[str, object]) -> str:
    return json.dumps(dict(params), ensure_ascii=False, sort_keys=True, default=str)


def _insert_calls_and_audit(
    conn: Connection, calls: Sequence[CallRecord], audit: Sequence[AuditRecord]
) -> None:
    if calls:
        conn.execute(
            _INSERT_CALLS,
            [
                {
                    "at": call.at,
                    "platform": call.platform,
                    "conversation_id": call.conversation_id,
                    "model": call.model,
                    "endpoint": call.endpoint,
                    "attempt": call.attempt,
                    "outcome": call.outcome,
                    "http_status": call.http_status,
                    "gemini_status": call.gemini_status,
                    "latency_ms": call.latency_ms,
                    "prompt_tokens": call.prompt_tokens,
                    "output_tokens": call.output_tokens,
                }
                for call in calls
            ],
        )
    if audit:
        conn.execute(
            _INSERT_AUDIT,
            [
                {
                    "at": record.at,
                    "platform": record.platform,
                    "actor_id": record.actor_id,
                    "action": record.action,
                    "model": record.model,
                    # The one choke point for audit parameters: secrets, e-mails and phones masked.
                    "params": json.dumps(
                        REDACTOR.redact_value(dict(record.params)),
                        ensure_ascii=False,
                        sort_keys=True,
                        default=str,
                    ),
                    "outcome": record.outcome,
                }
                for record in audit
            ],
        )

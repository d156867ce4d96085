"""Conversations and their exchanges (``turns``, the only text): ids, history, save, reset, re-keying."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.media import KeptMedia, erase_turns, insert_media, read_media
from bot.store.records import AuditRecord, CallRecord, insert_calls_and_audit
from bot.store.tables import conversations as _conversations
from bot.store.tables import media as _media
from bot.store.tables import turns as _turns

__all__ = ["NO_SUMMARY", "Conversations", "Exchange"]

# Known conversation ids kept in memory; bounded so a million conversations don't grow the process.
_CONVERSATION_CACHE: Final = 10_000

# The statements of every message, built once and run with parameters: building a statement and its
# cache key costs more CPU than SQLite takes to run it (docs/benchmarks.md).
_TOUCH_CONVERSATION: Final = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("b_id"))
    .values(last_active_at=bindparam("b_at"))
)
_HISTORY: Final = (
    # Served by ix_turns_conversation_id_created_at: a backward range scan that stops after `limit`.
    select(
        _turns.c.id,
        _turns.c.user_text,
        _turns.c.model_text,
        _turns.c.model_parts,
        _turns.c.created_at,
        # Whether files are kept with the exchange (an index lookup): only those are read.
        exists().where(_media.c.turn_id == _turns.c.id).label("has_media"),
    )
    .where(_turns.c.conversation_id == bindparam("b_id"), _turns.c.created_at >= bindparam("b_since"))
    .order_by(_turns.c.created_at.desc(), _turns.c.id.desc())
    .limit(bindparam("b_limit"))
)
_INSERT_TURN: Final = _turns.insert()
NO_SUMMARY: Final = {"summary": None, "summary_from": None, "summary_through": None}


class _Upserts:
    """The conversation upsert, in the dialect's construct."""

    def __init__(self, insert: Any) -> None:
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
    model_parts: tuple[Mapping[str, Any], ...] = ()  # what Gemini needs back beside the text, if any
    media: tuple[KeptMedia, ...] = ()  # the files the user sent with it, when asked for


class Conversations(Queries):
    """The ``conversations`` and ``turns`` tables."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._conversation_ids: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._upserts = _Upserts(self._insert)

    async def open_conversation(self, platform: str, chat_key: str, thread_key: str, now: datetime) -> int:
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

    # A thread message without a mention is addressed to the bot only when the bot already holds that
    # thread's conversation. Read-only; creates nothing.
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
        moved = await self.run_write(lambda conn: int(conn.execute(stmt).rowcount or 0), bulk=True)
        self._conversation_ids.clear()
        return moved

    async def history(
        self, conversation_id: int, *, limit: int, since: datetime, with_media: bool = False
    ) -> list[Exchange]:
        """The latest ``limit`` exchanges created at or after ``since``, oldest first; ``with_media``
        brings the files kept with them."""
        if limit <= 0:
            return []
        params = {"b_id": conversation_id, "b_since": since, "b_limit": limit}
        rows = await self._read_rows(_HISTORY, params)
        with_files = [row.id for row in rows if row.has_media] if with_media else []
        media = await read_media(self._read_rows, with_files) if with_files else {}
        return [
            Exchange(
                row.user_text, row.model_text, row.created_at, _parts(row.model_parts), media.get(row.id, ())
            )
            for row in reversed(rows)
        ]

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
        model_parts: Sequence[Mapping[str, Any]] | None = None,
        media: Sequence[KeptMedia] = (),
    ) -> None:
        """Store a finished exchange with its Gemini calls and audit records, in one transaction.

        ``model_parts`` are the reply's parts to send back in later turns (None: ``model_text`` is all);
        ``media`` the files the user sent, kept for later turns.
        """
        turn = {
            "conversation_id": conversation_id,
            "user_id": user_id,
            "user_text": user_text,
            "model_text": model_text,
            "model_parts": None if model_parts is None else json.dumps(list(model_parts), ensure_ascii=False),
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "finish_reason": finish_reason,
            "model": model,
            "created_at": now,
        }
        touch = {"b_id": conversation_id, "b_at": now}

        def save(conn: Connection) -> None:
            inserted = conn.execute(_INSERT_TURN, turn)
            if media:
                key = inserted.inserted_primary_key
                assert key is not None
                insert_media(conn, int(key[0]), media)
            conn.execute(_TOUCH_CONVERSATION, touch)
            insert_calls_and_audit(conn, calls, audit)

        await self.run_write(save)

    async def reset_conversation(self, conversation_id: int) -> int:
        """Delete this conversation's exchanges (with their files) and its summary; returns how many
        exchanges."""
        cleared = update(_conversations).where(_conversations.c.id == conversation_id).values(**NO_SUMMARY)

        def reset(conn: Connection) -> int:
            conn.execute(cleared)
            return erase_turns(conn, _turns.c.conversation_id == conversation_id)

        return await self.run_write(reset, bulk=True)


def _parts(stored: str | None) -> tuple[Mapping[str, Any], ...]:
    """Stored model parts back as a tuple (a value that is not a JSON list of objects counts as none)."""
    if not stored:
        return ()
    try:
        value = json.loads(stored)
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(part for part in value if isinstance(part, dict))

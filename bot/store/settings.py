"""Each conversation's own settings (``chat_settings``): read with its chat's in one query, upserted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.tables import chat_settings as _settings

__all__ = ["SETTING_COLUMNS", "ChatSettingsStore", "StoredSettings"]

SETTING_COLUMNS: Final = ("model", "persona", "custom_instruction", "search", "show_thoughts")

# Served by the primary key: one conversation's row and its chat's ("" thread) in one lookup.
_READ: Final = select(_settings.c.thread_key, *(_settings.c[name] for name in SETTING_COLUMNS)).where(
    _settings.c.platform == bindparam("b_platform"),
    _settings.c.chat_key == bindparam("b_chat"),
    _settings.c.thread_key.in_(bindparam("b_threads", expanding=True)),
)


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """One conversation key's stored choices; ``None`` = not chosen there."""

    model: str | None = None
    persona: str | None = None
    custom_instruction: str | None = None
    search: bool | None = None
    show_thoughts: bool | None = None


class ChatSettingsStore(Queries):
    """The ``chat_settings`` table."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._insert_stmt: Any = self._insert(_settings)

    async def read(
        self, platform: str, chat_key: str, thread_key: str
    ) -> tuple[StoredSettings | None, StoredSettings | None]:
        """(the chat's row, the thread's row); the second is None for a chat itself ("" thread)."""
        params = {"b_platform": platform, "b_chat": chat_key, "b_threads": list({"", thread_key})}
        rows = await self._read_rows(_READ, params)
        found = {
            row.thread_key: StoredSettings(**{name: getattr(row, name) for name in SETTING_COLUMNS})
            for row in rows
        }
        return found.get(""), (found.get(thread_key) if thread_key else None)

    async def move_chat(self, platform: str, old_chat_key: str, new_chat_key: str) -> int:
        """Re-key a chat's settings (its topics' too) unless the new chat has its own; returns how many."""
        taken = select(_settings.c.thread_key).where(
            _settings.c.platform == platform, _settings.c.chat_key == new_chat_key
        )
        stmt = (
            update(_settings)
            .where(
                _settings.c.platform == platform,
                _settings.c.chat_key == old_chat_key,
                _settings.c.thread_key.not_in(taken.scalar_subquery()),
            )
            .values(chat_key=new_chat_key)
        )
        return await self.run_write(lambda conn: int(conn.execute(stmt).rowcount or 0))

    async def update(
        self, platform: str, chat_key: str, thread_key: str, now: datetime, changes: dict[str, object]
    ) -> None:
        """Set the given columns (names of :data:`SETTING_COLUMNS`) of this conversation key's row."""
        unknown = set(changes) - set(SETTING_COLUMNS)
        if unknown:
            raise ValueError(f"not a chat setting: {sorted(unknown)}")
        row = {"platform": platform, "chat_key": chat_key, "thread_key": thread_key, "updated_at": now}
        stmt = self._insert_stmt.values(**row, **changes).on_conflict_do_update(
            index_elements=["platform", "chat_key", "thread_key"], set_={**changes, "updated_at": now}
        )

        def write(conn: Connection) -> None:
            conn.execute(stmt)

        await self.run_write(write)

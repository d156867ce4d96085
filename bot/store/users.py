"""The users: who was seen when (and in which language), and /forget's erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, update
from sqlalchemy.engine import Connection

from bot.store.database import Database, Queries
from bot.store.feedback import erase_feedback_of_user
from bot.store.media import erase_turns
from bot.store.summaries import clear_summaries_of_user_turns
from bot.store.tables import conversations as _conversations
from bot.store.tables import inbox as _inbox
from bot.store.tables import turns as _turns
from bot.store.tables import user_usage as _usage
from bot.store.tables import users as _users

__all__ = ["Users", "touch_user_upsert", "user_row"]


def touch_user_upsert(insert: Any) -> Any:
    """The upsert of :meth:`Users.touch_user` (rows from :func:`user_row`) in ``insert``'s dialect."""
    users = insert(_users)
    return users.on_conflict_do_update(
        index_elements=["platform", "user_id"],
        set_={
            "last_seen_at": users.excluded.last_seen_at,
            "language": func.coalesce(users.excluded.language, _users.c.language),
            "unreachable_at": None,
        },
    )


def user_row(platform: str, user_id: str, language: str | None, now: datetime) -> dict[str, object]:
    """The row :func:`touch_user_upsert` records: the user seen ``now``."""
    return {
        "platform": platform,
        "user_id": user_id,
        "language": language,
        "first_seen_at": now,
        "last_seen_at": now,
    }


class _Upserts:
    """The upsert of a user seen, in the dialect's construct."""

    def __init__(self, insert: Any) -> None:
        self.touch_user = touch_user_upsert(insert)


class Users(Queries):
    """The ``users`` table: last seen, language, reachability, and the /forget marker."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._upserts = _Upserts(self._insert)

    async def touch_user(self, platform: str, user_id: str, language: str | None, now: datetime) -> None:
        """Record that the user was seen now (a known language is kept when none is given).

        A user who writes to the bot is reachable again, so ``unreachable_at`` is cleared.
        """
        row, stmt = user_row(platform, user_id, language, now), self._upserts.touch_user
        await self.run_write(lambda conn: conn.execute(stmt, row))

    async def forget_user(self, platform: str, user_id: str, now: datetime) -> int:
        """Erase every exchange this user started on this platform (with its files), their inbox rows, the
        summaries that may hold their text, their votes on answers and the display name kept with their
        usage counts.

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
            clear_summaries_of_user_turns(conn, platform, user_id)
            erase_feedback_of_user(conn, platform, user_id)
            deleted = erase_turns(conn, (_turns.c.user_id == user_id) & in_platform)
            conn.execute(delete(_inbox).where(_inbox.c.platform == platform, _inbox.c.user_id == user_id))
            conn.execute(  # their counts stay (budgets), the name the platform gave goes
                update(_usage)
                .where(_usage.c.platform == platform, _usage.c.user_id == user_id)
                .values(display_name="")
            )
            conn.execute(mark)
            return deleted

        count = await self.run_write(erase, bulk=True)
        if count:
            await self._checkpoint()
        return count

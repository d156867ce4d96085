"""Feedback on answers: the platform messages that show each answer, and the users' votes on them.

A vote belongs to the answer's inbox row (one per user and answer, changeable, removable). Nothing here
holds text: message ids, user ids, 'up'/'down' and times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.engine import Connection

from bot.domain import VoteValue
from bot.store.database import Database, Queries
from bot.store.tables import answer_messages as _answers
from bot.store.tables import inbox as _inbox
from bot.store.tables import votes as _votes

__all__ = ["DOWN", "UP", "Feedback", "Satisfaction", "VoteValue", "erase_feedback_of_user"]

UP: Final = "up"
DOWN: Final = "down"

# Built once and run with parameters: every answer shown looks up its inbox row.
_INBOX_ID: Final = select(_inbox.c.id).where(
    _inbox.c.platform == bindparam("b_platform"), _inbox.c.event_id == bindparam("b_event_id")
)


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """Votes cast in one window: 👍 and 👎 counts."""

    up: int = 0
    down: int = 0

    @property
    def total(self) -> int:
        """Every vote counted."""
        return self.up + self.down

    @property
    def share(self) -> float | None:
        """The 👍 share of the votes (None when there were none)."""
        return self.up / self.total if self.total else None


def erase_feedback_of_user(conn: Connection, platform: str, user_id: str) -> None:
    """Inside /forget's transaction, before the user's inbox rows go: their votes, and the message ids
    of the answers they were given."""
    conn.execute(delete(_votes).where(_votes.c.platform == platform, _votes.c.user_id == user_id))
    theirs = select(_inbox.c.id).where(_inbox.c.platform == platform, _inbox.c.user_id == user_id)
    conn.execute(delete(_answers).where(_answers.c.inbox_id.in_(theirs)))


class Feedback(Queries):
    """The ``answer_messages`` and ``votes`` tables."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._note = self._insert(_answers).on_conflict_do_nothing(
            index_elements=["platform", "chat_key", "message_id"]
        )
        vote = self._insert(_votes)
        self._vote = vote.on_conflict_do_update(
            index_elements=["inbox_id", "user_id"],
            set_={"value": vote.excluded.value, "voted_at": vote.excluded.voted_at},
        )

    async def note_answer(
        self, platform: str, event_id: str, chat_key: str, message_ids: Sequence[str], now: datetime
    ) -> int:
        """Record that ``message_ids`` in ``chat_key`` show the answer to the inbox event ``event_id``;
        returns how many were recorded (0 when the event has no inbox row)."""
        find, event = _INBOX_ID, {"b_platform": platform, "b_event_id": event_id}
        note = self._note

        def write(conn: Connection) -> int:
            inbox_id = conn.execute(find, event).scalar_one_or_none()
            if inbox_id is None or not message_ids:
                return 0
            rows = [
                {
                    "platform": platform,
                    "chat_key": chat_key,
                    "message_id": message_id,
                    "inbox_id": inbox_id,
                    "created_at": now,
                }
                for message_id in message_ids
            ]
            conn.execute(note, rows)
            return len(rows)

        return await self.run_write(write)

    async def vote(
        self,
        platform: str,
        chat_key: str,
        message_id: str,
        user_id: str,
        *,
        value: VoteValue | None,
        now: datetime,
    ) -> bool:
        """Record ``user_id``'s vote on the answer shown by ``message_id`` (replacing their earlier one), or
        withdraw it (``value`` None). False when the message shows no known answer."""
        find = select(_answers.c.inbox_id).where(
            _answers.c.platform == platform,
            _answers.c.chat_key == chat_key,
            _answers.c.message_id == message_id,
        )
        upsert = self._vote

        def write(conn: Connection) -> bool:
            inbox_id = conn.execute(find).scalar_one_or_none()
            if inbox_id is None:
                return False
            if value is None:
                conn.execute(delete(_votes).where(_votes.c.inbox_id == inbox_id, _votes.c.user_id == user_id))
            else:
                row = {
                    "inbox_id": inbox_id,
                    "platform": platform,
                    "user_id": user_id,
                    "value": value,
                    "voted_at": now,
                }
                conn.execute(upsert, row)
            return True

        return await self.run_write(write)

    async def satisfaction(self, since: datetime) -> Satisfaction:
        """The votes last cast at or after ``since``."""
        stmt = select(_votes.c.value, func.count()).where(_votes.c.voted_at >= since).group_by(_votes.c.value)
        async with self._reader.connect() as conn:
            counts = {value: int(n) for value, n in (await conn.execute(stmt)).all()}
        return Satisfaction(up=counts.get(UP, 0), down=counts.get(DOWN, 0))

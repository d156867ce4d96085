"""Files kept with exchanges (``media``) and the Files API copies still to delete (``media_deletions``).

Every erasure of exchanges (retention, /reset, /forget, the admin purge) goes through
:func:`erase_turns`: in the transaction that deletes the turns, their files' Files API copies are queued
for deletion and their rows (bytes included) deleted. The queue is worked by bot.media.janitor until
each copy is gone, across restarts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from bot.store.database import Queries
from bot.store.models import UtcDateTime
from bot.store.tables import media as _media
from bot.store.tables import media_deletions as _deletions
from bot.store.tables import turns as _turns

__all__ = [
    "KeptMedia",
    "MediaStore",
    "PendingDeletion",
    "erase_turns",
    "insert_media",
    "queue_deletions",
    "read_media",
]

# Queued deletions are due at once, whatever the clock of the process that tries them says.
DUE_AT_ONCE: Final = datetime(2000, 1, 1, tzinfo=UTC)

_MEDIA_OF: Final = (
    select(
        _media.c.turn_id,
        _media.c.name,
        _media.c.mime_type,
        _media.c.size,
        _media.c.data,
        _media.c.file_name,
        _media.c.file_uri,
        _media.c.expires_at,
    )
    .where(_media.c.turn_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(_media.c.turn_id, _media.c.position)
)


@dataclass(frozen=True, slots=True)
class KeptMedia:
    """A file as kept with its exchange: its bytes, or its Files API copy, or both."""

    name: str
    mime_type: str
    size: int
    data: bytes | None = None
    file_name: str | None = None
    file_uri: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingDeletion:
    """A Files API copy waiting to be deleted."""

    id: int
    file_name: str
    attempts: int


RowsReader = Callable[[Executable, Mapping[str, Any] | None], Awaitable[Sequence[Row[Any]]]]
"""Every row of a read-only statement (``Database.read_rows``)."""


async def read_media(read_rows: RowsReader, turn_ids: Sequence[int]) -> dict[int, tuple[KeptMedia, ...]]:
    """The files kept with each of ``turn_ids`` (turns without any are left out)."""
    if not turn_ids:
        return {}
    rows = await read_rows(_MEDIA_OF, {"b_ids": list(turn_ids)})
    found: dict[int, list[KeptMedia]] = {}
    for row in rows:
        kept = KeptMedia(
            row.name, row.mime_type, row.size, row.data, row.file_name, row.file_uri, row.expires_at
        )
        found.setdefault(row.turn_id, []).append(kept)
    return {turn: tuple(items) for turn, items in found.items()}


def erase_turns(conn: Connection, condition: Any) -> int:
    """Delete the turns matching ``condition`` with their files, queueing the files' Files API copies
    for deletion, in the caller's transaction; returns how many turns were deleted."""
    turn_ids = select(_turns.c.id).where(condition)
    queued = literal(datetime.now(UTC), UtcDateTime())
    doomed = select(_media.c.file_name, literal(0), queued, literal(DUE_AT_ONCE, UtcDateTime())).where(
        _media.c.turn_id.in_(turn_ids), _media.c.file_name.is_not(None)
    )
    conn.execute(
        insert(_deletions).from_select(["file_name", "attempts", "queued_at", "next_try_at"], doomed)
    )
    conn.execute(delete(_media).where(_media.c.turn_id.in_(turn_ids)))
    return int(conn.execute(delete(_turns).where(condition)).rowcount)


def insert_media(conn: Connection, turn_id: int, media: Sequence[KeptMedia]) -> None:
    """Keep ``media`` with the turn ``turn_id`` (in the caller's transaction)."""
    if not media:
        return
    conn.execute(
        _media.insert(),
        [
            {
                "turn_id": turn_id,
                "position": position,
                "name": item.name,
                "mime_type": item.mime_type,
                "size": item.size,
                "data": item.data,
                "file_name": item.file_name,
                "file_uri": item.file_uri,
                "expires_at": item.expires_at,
            }
            for position, item in enumerate(media)
        ],
    )
    kept = [item.file_name for item in media if item.file_name]
    if kept:  # queued for deletion when uploaded, in case the answer never got this far: kept now
        conn.execute(delete(_deletions).where(_deletions.c.file_name.in_(kept)))


def queue_deletions(
    conn: Connection, file_names: Iterable[str], now: datetime, due_at: datetime = DUE_AT_ONCE
) -> None:
    """Queue Files API copies for deletion at ``due_at`` (in the caller's transaction)."""
    rows = [{"file_name": n, "queued_at": now, "attempts": 0, "next_try_at": due_at} for n in file_names]
    if rows:
        conn.execute(_deletions.insert(), rows)


class MediaStore(Queries):
    """The kept files of exchanges, and the queue of Files API copies to delete."""

    async def expire_references(self, file_uris: Sequence[str]) -> None:
        """Gemini no longer holds these files: their references count as expired from now on."""
        if file_uris:
            stmt = update(_media).where(_media.c.file_uri.in_(list(file_uris))).values(expires_at=DUE_AT_ONCE)
            await self.run_write(lambda conn: conn.execute(stmt))

    async def queue_upload(self, file_name: str, now: datetime, due_at: datetime) -> None:
        """Queue a copy just uploaded for deletion at ``due_at``, later than its answer can take: should
        the process die before the answer keeps or releases it, the copy is deleted all the same."""
        await self.run_write(lambda conn: queue_deletions(conn, [file_name], now, due_at))

    async def delete_now(self, file_names: Sequence[str], now: datetime) -> None:
        """Delete Files API copies that no exchange keeps (an answer that failed) now: their entries
        queued at upload become due, those missing are queued."""
        if not file_names:
            return
        names = list(file_names)
        queued = select(_deletions.c.file_name).where(_deletions.c.file_name.in_(names))
        due = update(_deletions).where(_deletions.c.file_name.in_(names)).values(next_try_at=DUE_AT_ONCE)

        def write(conn: Connection) -> None:
            found = set(conn.execute(queued).scalars())
            if found:
                conn.execute(due)
            queue_deletions(conn, [name for name in names if name not in found], now)

        await self.run_write(write)

    async def due_deletions(self, now: datetime, limit: int = 50) -> list[PendingDeletion]:
        """The queued deletions due to be tried now, oldest first."""
        stmt = (
            select(_deletions.c.id, _deletions.c.file_name, _deletions.c.attempts)
            .where(_deletions.c.next_try_at <= now)
            .order_by(_deletions.c.next_try_at, _deletions.c.id)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [PendingDeletion(row.id, row.file_name, row.attempts) for row in rows]

    async def deletion_done(self, deletion_id: int) -> None:
        """The copy is gone: its queue entry goes."""
        stmt = delete(_deletions).where(_deletions.c.id == deletion_id)
        await self.run_write(lambda conn: conn.execute(stmt))

    async def deletion_failed(self, deletion_id: int, next_try_at: datetime) -> None:
        """Deleting failed: tried again at ``next_try_at``."""
        stmt = (
            update(_deletions)
            .where(_deletions.c.id == deletion_id)
            .values(attempts=_deletions.c.attempts + 1, next_try_at=next_try_at)
        )
        await self.run_write(lambda conn: conn.execute(stmt))

    async def pending_deletions(self) -> int:
        """How many copies are waiting to be deleted."""
        async with self._reader.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(_deletions))).scalar_one())

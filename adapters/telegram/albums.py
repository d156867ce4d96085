"""Albums: the messages of one ``media_group_id`` gathered into one message, answered once.

Telegram delivers an album as one update per photo or file, one after the other. The first part to
arrive is recorded in the inbox and queued like any message (its event id names the album: a restart
follows it up, a second delivery of it is a duplicate); the parts after it join it without an inbox
row of their own and are not queued. When the first part's turn comes, its handler waits until no part
has arrived for ``quiet`` seconds and answers the whole album.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from adapters.telegram.normalize import Normalized

AlbumKey = tuple[int, str]
"""(chat id, media_group_id)."""


@dataclass
class _Album:
    parts: dict[int, Normalized]  # by message id
    update_ids: set[int]
    last_arrival: float


class Albums:
    """The albums being gathered, by chat and ``media_group_id``."""

    def __init__(self, quiet: float) -> None:
        self._quiet = quiet
        self._albums: dict[AlbumKey, _Album] = {}

    def __len__(self) -> int:
        return len(self._albums)

    def __contains__(self, key: AlbumKey) -> bool:
        return key in self._albums

    def start(self, key: AlbumKey, update_id: int, first: Normalized) -> None:
        """A new album, ``first`` the part that names it."""
        message_id = int(first.incoming.reply_ids["message_id"])
        self._albums[key] = _Album({message_id: first}, {update_id}, _now())

    def join(self, key: AlbumKey, update_id: int, part: Normalized) -> None:
        """Add a later part (a second delivery of one already here changes nothing)."""
        album = self._albums[key]
        if update_id in album.update_ids:
            return
        album.update_ids.add(update_id)
        album.parts.setdefault(int(part.incoming.reply_ids["message_id"]), part)
        album.last_arrival = _now()

    async def gather(self, key: AlbumKey, first: Normalized) -> Normalized:
        """The whole album as one message, once ``quiet`` seconds passed without a new part.

        The result is ``first`` (its event id, reply ids and target) with every part's files in message
        order, and the parts' captions as its text. The album is forgotten: a part arriving later starts
        a new one.
        """
        album = self._albums.get(key)
        if album is None:
            return first
        while (left := album.last_arrival + self._quiet - _now()) > 0:  # noqa: ASYNC110 - no polling
            await asyncio.sleep(left)  # a part arriving meanwhile moves last_arrival on
        del self._albums[key]
        return merge(first, [album.parts[n] for n in sorted(album.parts)])


def merge(first: Normalized, parts: list[Normalized]) -> Normalized:
    """``first`` carrying the files of every part (in order) and their captions as its text."""
    text = "\n".join(t for t in (part.incoming.text.strip() for part in parts) if t)
    files = tuple(file for part in parts for file in part.files)
    return replace(first, incoming=replace(first.incoming, text=text), files=files)


def _now() -> float:
    return asyncio.get_running_loop().time()

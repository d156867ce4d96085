"""Users an admin blocked, as the engine checks them for every message: a set refreshed every few seconds.

The list lives in the database (``blocked_users``), so every replica honours it; each process reads it
again at most every :data:`REFRESH_S` seconds, so the check costs a set lookup, not a query per message.
A block made through this process takes effect here at once, on the other replicas within that delay.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from bot.clock import Clock
from bot.observability.logs import get_logger
from bot.store import AuditRecord, BlockedUsers

log = get_logger(__name__)

REFRESH_S: Final = 5.0


class BlockList:
    """Whether a (platform, user id) is blocked, and blocking or unblocking one (audited)."""

    def __init__(self, store: BlockedUsers, clock: Clock, *, refresh_s: float = REFRESH_S) -> None:
        self._store = store
        self._clock = clock
        self._refresh_s = refresh_s
        self._blocked: dict[tuple[str, str], datetime] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def is_blocked(self, platform: str, user_id: str) -> bool:
        """Whether an admin blocked this user (as of at most :data:`REFRESH_S` seconds ago)."""
        await self._fresh()
        return (platform, user_id) in self._blocked

    async def entries(self) -> dict[tuple[str, str], datetime]:
        """Every blocked user with when they were blocked."""
        await self._fresh(force=True)
        return dict(self._blocked)

    async def block(self, platform: str, user_id: str, audit: AuditRecord) -> bool:
        """Block a user on every replica; False when they already were. ``audit`` is stored with it."""
        added = await self._store.block_user(platform, user_id, audit.at, audit)
        self._loaded_at = None
        return added

    async def unblock(self, platform: str, user_id: str, audit: AuditRecord) -> bool:
        """Unblock a user on every replica; False when they were not blocked."""
        removed = await self._store.unblock_user(platform, user_id, audit)
        self._loaded_at = None
        return removed

    async def _fresh(self, *, force: bool = False) -> None:
        if not force and not self._stale():
            return
        async with self._lock:
            if not force and not self._stale():
                return  # another task refreshed it while this one waited
            try:
                self._blocked = await self._store.blocked_users()
            except Exception:
                # The last known list stays in force; the next message tries again.
                log.warning("blocklist.refresh_failed", exc_info=True)
                if force:
                    raise
                return
            self._loaded_at = self._clock.monotonic()

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock.monotonic() - self._loaded_at >= self._refresh_s

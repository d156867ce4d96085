"""Users an admin blocked from the admin page: stored so every replica refuses them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from bot.store.database import Queries
from bot.store.records import AuditRecord, insert_calls_and_audit
from bot.store.tables import blocked_users as _blocked

__all__ = ["BlockedUsers"]


class BlockedUsers(Queries):
    """Blocking and unblocking, each with its audit record in the same transaction."""

    async def block_user(self, platform: str, user_id: str, now: datetime, audit: AuditRecord) -> bool:
        """Block a user and record ``audit``, in one transaction; False when they already were blocked."""
        row = {"platform": platform, "user_id": user_id, "blocked_at": now, "blocked_by": audit.actor_id}
        stmt = (
            self._insert(_blocked).values(row).on_conflict_do_nothing(index_elements=["platform", "user_id"])
        )

        def block(conn: Connection) -> bool:
            added = conn.execute(stmt).rowcount == 1
            insert_calls_and_audit(conn, (), [audit])
            return added

        return await self.run_write(block)

    async def unblock_user(self, platform: str, user_id: str, audit: AuditRecord) -> bool:
        """Unblock a user and record ``audit``, in one transaction; False when they were not blocked."""
        stmt = delete(_blocked).where(_blocked.c.platform == platform, _blocked.c.user_id == user_id)

        def unblock(conn: Connection) -> bool:
            removed = conn.execute(stmt).rowcount == 1
            insert_calls_and_audit(conn, (), [audit])
            return removed

        return await self.run_write(unblock)

    async def blocked_users(self) -> dict[tuple[str, str], datetime]:
        """Every blocked (platform, user id), with when it was blocked."""
        b = _blocked.c
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(b.platform, b.user_id, b.blocked_at))).all()
        return {(str(row[0]), str(row[1])): row[2] for row in rows}

"""The activity figures of /stats, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from bot.store import Store
from tests.integration.store.helpers import T0


async def test_activity_counts(store: Store) -> None:
    for n, status in enumerate(["answered", "answered", "failed", None]):
        await store.inbox.claim_event("telegram", f"e{n}", "u1", T0 + timedelta(minutes=n))
        if status:
            await store.inbox.finish_event("telegram", f"e{n}", status, T0 + timedelta(minutes=n))
    await store.inbox.claim_event("telegram", "old", "u1", T0 - timedelta(days=2))
    await store.inbox.finish_event("telegram", "old", "answered", T0 - timedelta(days=2))
    await store.conversations.open_conversation("telegram", "1", "", T0)
    await store.conversations.open_conversation("telegram", "2", "", T0 - timedelta(days=2))
    await store.users.touch_user("telegram", "u1", None, T0)
    counts = await store.statistics.activity_counts(T0 - timedelta(hours=1))
    assert (counts.messages_answered, counts.messages_failed) == (2, 1)
    assert (counts.active_conversations, counts.active_users) == (1, 1)

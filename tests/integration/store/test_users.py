"""Users: seen, language, reachability, and /forget, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from bot.store import Store
from bot.store.models import Inbox, User
from tests.integration.store.helpers import T0, count, save


async def test_forget_user_across_conversations(store: Store) -> None:
    group = await store.conversations.open_conversation("telegram", "-100", "", T0)
    dm = await store.conversations.open_conversation("telegram", "42", "", T0)
    slack = await store.conversations.open_conversation("slack", "D1", "", T0)
    await save(store, group, 1, T0, user_id="42")
    await save(store, group, 2, T0, user_id="43")
    await save(store, dm, 3, T0, user_id="42")
    await save(store, slack, 4, T0, user_id="42")  # same id string on another platform: not this user
    await store.inbox.claim_event("telegram", "e1", "42", T0)
    await store.inbox.claim_event("telegram", "e2", "43", T0)
    await store.users.touch_user("telegram", "42", "en", T0)

    assert await store.users.forget_user("telegram", "42", T0 + timedelta(hours=1)) == 2
    assert [e.user_text for e in await store.conversations.history(group, limit=10, since=T0)] == [
        "question 2"
    ]
    assert await store.conversations.history(dm, limit=10, since=T0) == []
    assert len(await store.conversations.history(slack, limit=10, since=T0)) == 1
    assert await store.inbox.claim_event("telegram", "e2", "43", T0) is False  # other users' inbox rows stay
    assert await count(store, Inbox) == 1
    async with store.engine.connect() as conn:
        user = (await conn.execute(select(User).where(User.user_id == "42"))).one()
    assert (user.language, user.forgotten_at) == ("en", T0 + timedelta(hours=1))

    # A user never seen before can ask too; the marker is still recorded.
    assert await store.users.forget_user("slack", "U404", T0) == 0
    assert await count(store, User) == 2


async def test_touch_user_upsert(store: Store) -> None:
    await store.users.touch_user("telegram", "1", "zh", T0)
    await store.users.touch_user("telegram", "1", None, T0 + timedelta(hours=2))
    await store.users.touch_user("telegram", "2", None, T0)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE users SET unreachable_at = first_seen_at"))
    await store.users.touch_user("telegram", "2", "en", T0 + timedelta(hours=3))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(User).order_by(User.user_id))).all()
    assert [(r.user_id, r.language, r.first_seen_at, r.last_seen_at, r.unreachable_at) for r in rows] == [
        ("1", "zh", T0, T0 + timedelta(hours=2), T0),
        ("2", "en", T0, T0 + timedelta(hours=3), None),
    ]
    assert (await store.statistics.activity_counts(T0 + timedelta(hours=1))).active_users == 2

"""The block list on a real store (SQLite and PostgreSQL): shared by replicas, refreshed, audited."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.guards.blocklist import BlockList
from bot.store import AuditRecord, Store
from tests.fakes.clock import FakeClock


def record(action: str) -> AuditRecord:
    return AuditRecord(
        at=datetime(2026, 12, 5, tzinfo=UTC),
        platform="admin_web",
        actor_id="session:abc",
        action=action,
        params={"platform": "telegram", "user_id": "42"},
        outcome="ok",
    )


async def test_a_block_reaches_another_replica_after_its_refresh(store: Store) -> None:
    clock = FakeClock(frozen=True)
    here, there = BlockList(store.blocks, clock, refresh_s=5), BlockList(store.blocks, clock, refresh_s=5)
    assert not await there.is_blocked("telegram", "42")  # loads the (empty) list
    assert await here.block("telegram", "42", record("admin.block_user"))
    assert not await here.block("telegram", "42", record("admin.block_user"))
    assert await here.is_blocked("telegram", "42")  # at once where it was blocked
    assert not await there.is_blocked("telegram", "42")  # the other still uses its copy...
    clock.advance(5)
    assert await there.is_blocked("telegram", "42")  # ...until it refreshes
    assert not await there.is_blocked("slack", "42")
    assert await there.unblock("telegram", "42", record("admin.unblock_user"))
    assert not await there.is_blocked("telegram", "42")
    assert await store.statistics.audit_outcomes("admin.block_user", datetime(2026, 1, 1, tzinfo=UTC)) == {
        "ok": 2
    }
    assert await store.statistics.audit_outcomes("admin.unblock_user", datetime(2026, 1, 1, tzinfo=UTC)) == {
        "ok": 1
    }


async def test_top_users_and_latency_buckets(store: Store) -> None:
    from datetime import timedelta

    from bot.store import CallRecord

    t0 = datetime(2026, 12, 5, 10, tzinfo=UTC)
    for n, user in enumerate(["a", "b", "b", "c", "c", "c"]):
        assert await store.inbox.claim_event(
            "telegram", f"e{n}", user, t0 + timedelta(minutes=n), touch_user=True
        )
    conversation = await store.conversations.open_conversation("telegram", "chat", "", t0)
    await store.conversations.save_exchange(
        conversation_id=conversation,
        user_id="a",
        user_text="x",
        model_text="y",
        prompt_tokens=700,
        output_tokens=300,
        finish_reason="STOP",
        model="m",
        now=t0,
    )
    top = await store.statistics.top_users(t0, limit=2)
    assert [(u.user_id, u.messages, u.tokens) for u in top] == [("c", 3, 0), ("b", 2, 0), ("a", 1, 1000)]
    calls = [
        CallRecord(t0 + timedelta(minutes=m), "telegram", "m", "e", 1, "ok", 200, None, float(ms))
        for m, ms in ((1, 100), (2, 300), (3, 200), (12, 50))
    ]
    await store.records.record_calls(calls)
    bounds = [t0, t0 + timedelta(minutes=10), t0 + timedelta(minutes=20), t0 + timedelta(minutes=30)]
    buckets = await store.statistics.call_latency_buckets(bounds, (0.5, 0.95))
    assert [(b.calls, b.percentiles) for b in buckets] == [
        (3, [200.0, 300.0]),
        (1, [50.0, 50.0]),
        (0, [None, None]),
    ]

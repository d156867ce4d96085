"""Store queries, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.store import AuditRecord, CallRecord, Exchange, Store
from bot.store.models import AuditRow, Inbox, LlmCall, Turn, User
from tests.integration.store.conftest import sqlite_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def call(at: datetime, **overrides: object) -> CallRecord:
    values: dict[str, object] = {
        "at": at,
        "platform": "telegram",
        "model": "gemini-2.5-flash",
        "endpoint": "https://generativelanguage.googleapis.com",
        "attempt": 1,
        "outcome": "ok",
        "http_status": 200,
        "gemini_status": None,
        "latency_ms": 123.5,
        "prompt_tokens": 10,
        "output_tokens": 20,
    }
    values.update(overrides)
    return CallRecord(**values)  # type: ignore[arg-type]


async def save(store: Store, conversation_id: int, n: int, at: datetime, user_id: str = "u1") -> None:
    await store.save_exchange(
        conversation_id=conversation_id,
        user_id=user_id,
        user_text=f"question {n}",
        model_text=f"answer {n}",
        prompt_tokens=1,
        output_tokens=2,
        finish_reason="STOP",
        model="gemini-2.5-flash",
        now=at,
    )


async def count(store: Store, model: type[object]) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_ping_false_when_database_unusable(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    broken = await Store.open(sqlite_url(tmp_path))  # a directory is no database
    try:
        assert await broken.ping() is False
    finally:
        await broken.close()
    # aiosqlite stops the worker thread of a failed connect without awaiting it; let it finish while
    # this test's event loop still runs, or it reports to a closed loop during the next test.
    for thread in set(threading.enumerate()) - threads_before:
        await asyncio.to_thread(thread.join, 5)


async def test_claim_event_deduplicates(store: Store) -> None:
    assert await store.claim_event("telegram", "e1", "u1", T0) is True
    assert await store.claim_event("telegram", "e1", "u1", T0) is False
    assert await store.claim_event("slack", "e1", "u1", T0) is True


async def test_concurrent_claims_of_one_event_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_event("slack", "Ev1", "U1", T0) for _ in range(30)))
    assert results.count(True) == 1


async def test_finish_and_unanswered_events(store: Store) -> None:
    for n in range(3):
        await store.claim_event(
            "telegram",
            f"e{n}",
            f"u{n}",
            T0 + timedelta(seconds=n),
            chat_key=f"c{n}",
            thread_key="7" if n == 2 else "",
            reply_to={"message_id": str(40 + n)},
            language="zh-hans",
        )
    await store.claim_event("slack", "s1", "U1", T0)
    await store.finish_event("telegram", "e0", "answered", T0 + timedelta(seconds=5), conversation_id=7)
    await store.finish_event("telegram", "e1", "failed", T0 + timedelta(seconds=5))
    # Where the answer is being written is recorded while the event is unanswered, and only then.
    await store.set_reply_to("telegram", "e2", {"message_id": "42", "answer": "77"})
    await store.set_reply_to("telegram", "e0", {"message_id": "40", "answer": "78"})
    [left] = await store.unanswered_events("telegram", T0 + timedelta(minutes=1))
    assert (left.event_id, left.user_id, left.chat_key, left.thread_key) == ("e2", "u2", "c2", "7")
    assert left.reply_to == {"message_id": "42", "answer": "77"} and left.language == "zh-hans"
    assert await store.unanswered_events("telegram", T0 + timedelta(seconds=1)) == []
    # Taking one over is atomic: only the first of two replicas gets it, and it is no longer unanswered.
    later = T0 + timedelta(minutes=1)
    results = await asyncio.gather(*(store.take_unanswered("telegram", "e2", T0, later) for _ in range(2)))
    assert sorted(results) == [False, True]
    assert await store.unanswered_events("telegram", later) == []
    # A follow-up's answer stays: finishing an orphaned row later changes nothing.
    await store.finish_event("telegram", "e2", "answered", later)
    assert await store.unanswered_events("telegram", later) == []
    async with store.engine.connect() as conn:
        status = (await conn.execute(select(Inbox.status).where(Inbox.event_id == "e2"))).scalar_one()
    assert status == "orphaned"
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(Inbox).where(Inbox.event_id == "e0"))).one()
    assert (row.status, row.conversation_id, row.answered_at) == ("answered", 7, T0 + timedelta(seconds=5))
    assert row.reply_to == '{"message_id": "40"}'


async def test_an_answer_in_progress_is_taken_over_only_once_stale(store: Store) -> None:
    """start_answer on a shared database (PostgreSQL): 'answering' rows are followed up only when their
    answer started before the cut-off (a dead replica), and a row taken over is not started again."""
    for n in range(3):
        await store.claim_event("slack", f"a{n}", "U1", T0, chat_key="C1")
    shared = store.engine.dialect.name == "postgresql"
    assert await store.start_answer("slack", "a0", T0 + timedelta(seconds=10))
    assert await store.start_answer("slack", "a1", T0 + timedelta(minutes=10))
    cut_off = T0 + timedelta(minutes=5)
    unfinished = sorted(row.event_id for row in await store.unanswered_events("slack", cut_off))
    assert unfinished == (["a0", "a2"] if shared else ["a0", "a1", "a2"])
    assert await store.take_unanswered("slack", "a2", cut_off, cut_off)
    # The replica that held a2 back reaches it now: it was taken over, so it is not answered again.
    assert await store.start_answer("slack", "a2", cut_off) is not shared
    assert await store.take_unanswered("slack", "a1", cut_off, cut_off) is not shared  # live answer kept


async def test_conversation_id_get_or_create(store: Store) -> None:
    a = await store.conversation_id("telegram", "100", "", T0)
    b = await store.conversation_id("telegram", "100", "7", T0)
    c = await store.conversation_id("slack", "100", "", T0)
    assert len({a, b, c}) == 3
    assert await store.conversation_id("telegram", "100", "", T0 + timedelta(hours=1)) == a
    ids = await asyncio.gather(*(store.conversation_id("telegram", "200", "", T0) for _ in range(20)))
    assert len(set(ids)) == 1
    # Known conversations are served from the id cache; an answered exchange marks them active.
    assert (await store.stats_counts(T0 + timedelta(minutes=30))).active_conversations == 0
    await save(store, a, 1, T0 + timedelta(hours=1))
    counts = await store.stats_counts(T0 + timedelta(minutes=30))
    assert counts.active_conversations == 1  # only `a` was active after T0


async def test_history_last_n_oldest_first_since_and_limit(store: Store) -> None:
    conv = await store.conversation_id("telegram", "1", "", T0)
    other = await store.conversation_id("telegram", "2", "", T0)
    for n in range(15):
        await save(store, conv, n, T0 + timedelta(minutes=n))
    await save(store, other, 99, T0 + timedelta(minutes=30))

    got = await store.history(conv, limit=10, since=T0)
    assert [e.user_text for e in got] == [f"question {n}" for n in range(5, 15)]
    assert got[-1] == Exchange("question 14", "answer 14", T0 + timedelta(minutes=14))
    assert got[0].created_at.tzinfo is not None

    recent = await store.history(conv, limit=10, since=T0 + timedelta(minutes=12))
    assert [e.model_text for e in recent] == ["answer 12", "answer 13", "answer 14"]
    assert await store.history(conv, limit=0, since=T0) == []
    assert await store.history(conv, limit=10, since=T0 + timedelta(days=1)) == []


async def test_same_timestamp_keeps_insertion_order(store: Store) -> None:
    conv = await store.conversation_id("console", "me", "", T0)
    for n in range(4):
        await save(store, conv, n, T0)
    got = await store.history(conv, limit=3, since=T0)
    assert [e.user_text for e in got] == ["question 1", "question 2", "question 3"]


async def test_timestamps_round_trip_as_utc(store: Store) -> None:
    conv = await store.conversation_id("telegram", "tz", "", T0)
    local = datetime(2026, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))  # == T0
    await save(store, conv, 1, local)
    (got,) = await store.history(conv, limit=1, since=T0)
    assert got.created_at == T0
    assert got.created_at.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive datetime"):
        await store.history(conv, limit=1, since=datetime(2026, 3, 1))


async def test_save_exchange_stores_turn_calls_and_audit(store: Store) -> None:
    conv = await store.conversation_id("telegram", "1", "", T0)
    await store.save_exchange(
        conversation_id=conv,
        user_id="u1",
        user_text="hi",
        model_text="hello",
        prompt_tokens=3,
        output_tokens=4,
        finish_reason="STOP",
        model="gemini-2.5-flash",
        now=T0,
        calls=[
            call(T0, attempt=1, outcome="server", http_status=503),
            call(T0, attempt=2, conversation_id=conv),
        ],
        audit=[AuditRecord(T0, "telegram", "u1", "answer", {"chars": 5, "lang": "中文"}, model="m")],
    )
    assert (await count(store, Turn), await count(store, LlmCall), await count(store, AuditRow)) == (1, 2, 1)
    calls = await store.calls_since(T0)
    assert [(c.attempt, c.outcome, c.http_status, c.conversation_id) for c in calls] == [
        (1, "server", 503, None),
        (2, "ok", 200, conv),
    ]
    assert calls[1] == call(T0, attempt=2, conversation_id=conv)
    assert await store.calls_since(T0 + timedelta(seconds=1)) == []
    async with store.engine.connect() as conn:
        params = (await conn.execute(select(AuditRow.params))).scalar_one()
    assert params == '{"chars": 5, "lang": "中文"}'


async def test_save_exchange_is_atomic(store: Store) -> None:
    conv = await store.conversation_id("telegram", "1", "", T0)
    bad = call(T0, model=None)  # violates NOT NULL after the turn row was inserted
    with pytest.raises(Exception, match=r"(?i)not null|null value"):
        await store.save_exchange(
            conversation_id=conv,
            user_id="u1",
            user_text="hi",
            model_text="hello",
            prompt_tokens=1,
            output_tokens=1,
            finish_reason="STOP",
            model="m",
            now=T0,
            calls=[call(T0), bad],
        )
    assert (await count(store, Turn), await count(store, LlmCall)) == (0, 0)
    assert await store.history(conv, limit=10, since=T0) == []


async def test_record_calls_and_audit(store: Store) -> None:
    await store.record_calls(
        [call(T0, outcome="rate_limited", http_status=429, gemini_status="RESOURCE_EXHAUSTED")]
    )
    await store.record_calls([], [AuditRecord(T0, "slack", "U1", "reset", {})])
    await store.record_audit([AuditRecord(T0, "slack", "U1", "forget", {}, outcome="ok")])
    await store.record_audit([])
    assert (await count(store, LlmCall), await count(store, AuditRow)) == (1, 2)
    (got,) = await store.calls_since(T0)
    assert (got.outcome, got.gemini_status, got.latency_ms) == ("rate_limited", "RESOURCE_EXHAUSTED", 123.5)


async def test_reset_conversation(store: Store) -> None:
    a = await store.conversation_id("telegram", "1", "", T0)
    b = await store.conversation_id("telegram", "2", "", T0)
    for n in range(3):
        await save(store, a, n, T0)
    await save(store, b, 9, T0)
    assert await store.reset_conversation(a) == 3
    assert await store.reset_conversation(a) == 0
    assert await store.history(a, limit=10, since=T0) == []
    assert len(await store.history(b, limit=10, since=T0)) == 1


async def test_forget_user_across_conversations(store: Store) -> None:
    group = await store.conversation_id("telegram", "-100", "", T0)
    dm = await store.conversation_id("telegram", "42", "", T0)
    slack = await store.conversation_id("slack", "D1", "", T0)
    await save(store, group, 1, T0, user_id="42")
    await save(store, group, 2, T0, user_id="43")
    await save(store, dm, 3, T0, user_id="42")
    await save(store, slack, 4, T0, user_id="42")  # same id string on another platform: not this user
    await store.claim_event("telegram", "e1", "42", T0)
    await store.claim_event("telegram", "e2", "43", T0)
    await store.touch_user("telegram", "42", "en", T0)

    assert await store.forget_user("telegram", "42", T0 + timedelta(hours=1)) == 2
    assert [e.user_text for e in await store.history(group, limit=10, since=T0)] == ["question 2"]
    assert await store.history(dm, limit=10, since=T0) == []
    assert len(await store.history(slack, limit=10, since=T0)) == 1
    assert await store.claim_event("telegram", "e2", "43", T0) is False  # other users' inbox rows stay
    assert await count(store, Inbox) == 1
    async with store.engine.connect() as conn:
        user = (await conn.execute(select(User).where(User.user_id == "42"))).one()
    assert (user.language, user.forgotten_at) == ("en", T0 + timedelta(hours=1))

    # A user never seen before can ask too; the marker is still recorded.
    assert await store.forget_user("slack", "U404", T0) == 0
    assert await count(store, User) == 2


async def test_touch_user_upsert(store: Store) -> None:
    await store.touch_user("telegram", "1", "zh", T0)
    await store.touch_user("telegram", "1", None, T0 + timedelta(hours=2))
    await store.touch_user("telegram", "2", None, T0)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE users SET unreachable_at = first_seen_at"))
    await store.touch_user("telegram", "2", "en", T0 + timedelta(hours=3))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(User).order_by(User.user_id))).all()
    assert [(r.user_id, r.language, r.first_seen_at, r.last_seen_at, r.unreachable_at) for r in rows] == [
        ("1", "zh", T0, T0 + timedelta(hours=2), T0),
        ("2", "en", T0, T0 + timedelta(hours=3), None),
    ]
    assert (await store.stats_counts(T0 + timedelta(hours=1))).active_users == 2


async def test_purge_counts(store: Store) -> None:
    conv = await store.conversation_id("telegram", "1", "", T0)
    for n in range(5):
        at = T0 + timedelta(hours=n)
        await save(store, conv, n, at)
        await store.claim_event("telegram", f"e{n}", "u1", at)
        await store.record_calls([call(at)], [AuditRecord(at, "telegram", "u1", "answer", {})])
    cutoff = T0 + timedelta(hours=3)
    counts = await store.purge(turns_before=cutoff, inbox_before=T0 + timedelta(hours=1), audit_before=cutoff)
    assert counts == {"turns": 3, "inbox": 1, "inbox_targets": 0, "audit": 3, "llm_calls": 0}
    counts = await store.purge(turns_before=cutoff, inbox_before=T0, audit_before=T0, calls_before=cutoff)
    assert counts == {"turns": 0, "inbox": 0, "inbox_targets": 0, "audit": 0, "llm_calls": 3}
    assert [e.user_text for e in await store.history(conv, limit=10, since=T0)] == [
        "question 3",
        "question 4",
    ]


async def test_purge_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.store.repo._PURGE_BATCH", 4)
    conv = await store.conversation_id("telegram", "1", "", T0)
    for n in range(10):
        await save(store, conv, n, T0)
    counts = await store.purge(turns_before=T0 + timedelta(seconds=1), inbox_before=T0, audit_before=T0)
    assert counts["turns"] == 10
    assert await count(store, Turn) == 0


async def test_quota_take_and_count(store: Store) -> None:
    day = {"day": "2026-03-01"}
    assert await store.quota_count("day", "2026-03-01") == 0
    assert [(await store.quota_take(day, {"day": 2}, 1))[::2] for _ in range(3)] == [
        (1, {"day": 1}),
        (1, {"day": 2}),
        (0, {"day": 2}),
    ]
    assert await store.quota_take({"day": "2026-03-02"}, {"day": 2}, 1) == (1, "", {"day": 1})
    minute = {"minute": "2026-03-01T12:00"}
    assert await store.quota_take(minute, {"minute": 0}, 1) == (1, "", {"minute": 1})
    for _ in range(5):
        await store.quota_take(minute, {"minute": 0}, 1)
    assert await store.quota_count("minute", "2026-03-01T12:00") == 6
    assert await store.quota_count("day", "2026-03-01") == 2


async def test_quota_take_is_all_or_nothing_across_windows(store: Store) -> None:
    windows = {"minute": "2026-03-01T12:00", "day": "2026-03-01"}
    assert await store.quota_take(windows, {"minute": 0, "day": 3}, 5) == (3, "day", {"minute": 3, "day": 3})
    assert await store.quota_take(windows, {"minute": 0, "day": 3}, 1) == (0, "day", {"minute": 3, "day": 3})
    # Both full: the day names the refusal (the minute's reset would not free anything).
    assert await store.quota_take(windows, {"minute": 3, "day": 3}, 1) == (0, "day", {"minute": 3, "day": 3})
    # Room for exactly what is wanted refuses nothing.
    assert await store.quota_take(windows, {"minute": 5, "day": 5}, 2) == (2, "", {"minute": 5, "day": 5})


async def test_quota_concurrent_tasks_never_overspend(store: Store) -> None:
    month = {"month": "2026-03"}
    results = await asyncio.gather(*(store.quota_take(month, {"month": 20}, 1) for _ in range(50)))
    assert sum(granted for granted, _, _ in results) == 20
    assert sorted(counts["month"] for granted, _, counts in results if granted) == list(range(1, 21))
    assert await store.quota_count("month", "2026-03") == 20


async def test_stats_counts(store: Store) -> None:
    for n, status in enumerate(["answered", "answered", "failed", None]):
        await store.claim_event("telegram", f"e{n}", "u1", T0 + timedelta(minutes=n))
        if status:
            await store.finish_event("telegram", f"e{n}", status, T0 + timedelta(minutes=n))
    await store.claim_event("telegram", "old", "u1", T0 - timedelta(days=2))
    await store.finish_event("telegram", "old", "answered", T0 - timedelta(days=2))
    await store.conversation_id("telegram", "1", "", T0)
    await store.conversation_id("telegram", "2", "", T0 - timedelta(days=2))
    await store.touch_user("telegram", "u1", None, T0)
    counts = await store.stats_counts(T0 - timedelta(hours=1))
    assert (counts.messages_answered, counts.messages_failed) == (2, 1)
    assert (counts.active_conversations, counts.active_users) == (1, 1)

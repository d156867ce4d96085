"""Conversations and their exchanges: ids, history, the exchange saved in one transaction, reset."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.store import AuditRecord, Exchange, Store
from bot.store.models import AuditRow, LlmCall, Turn
from tests.integration.store.helpers import T0, call, count, save


async def test_open_conversation_gets_or_creates(store: Store) -> None:
    a = await store.conversations.open_conversation("telegram", "100", "", T0)
    b = await store.conversations.open_conversation("telegram", "100", "7", T0)
    c = await store.conversations.open_conversation("slack", "100", "", T0)
    assert len({a, b, c}) == 3
    assert await store.conversations.open_conversation("telegram", "100", "", T0 + timedelta(hours=1)) == a
    ids = await asyncio.gather(
        *(store.conversations.open_conversation("telegram", "200", "", T0) for _ in range(20))
    )
    assert len(set(ids)) == 1
    # Known conversations are served from the id cache; an answered exchange marks them active.
    assert (await store.statistics.activity_counts(T0 + timedelta(minutes=30))).active_conversations == 0
    await save(store, a, 1, T0 + timedelta(hours=1))
    counts = await store.statistics.activity_counts(T0 + timedelta(minutes=30))
    assert counts.active_conversations == 1  # only `a` was active after T0


async def test_history_last_n_oldest_first_since_and_limit(store: Store) -> None:
    conv = await store.conversations.open_conversation("telegram", "1", "", T0)
    other = await store.conversations.open_conversation("telegram", "2", "", T0)
    for n in range(15):
        await save(store, conv, n, T0 + timedelta(minutes=n))
    await save(store, other, 99, T0 + timedelta(minutes=30))

    got = await store.conversations.history(conv, limit=10, since=T0)
    assert [e.user_text for e in got] == [f"question {n}" for n in range(5, 15)]
    assert got[-1] == Exchange("question 14", "answer 14", T0 + timedelta(minutes=14))
    assert got[0].created_at.tzinfo is not None

    recent = await store.conversations.history(conv, limit=10, since=T0 + timedelta(minutes=12))
    assert [e.model_text for e in recent] == ["answer 12", "answer 13", "answer 14"]
    assert await store.conversations.history(conv, limit=0, since=T0) == []
    assert await store.conversations.history(conv, limit=10, since=T0 + timedelta(days=1)) == []


async def test_same_timestamp_keeps_insertion_order(store: Store) -> None:
    conv = await store.conversations.open_conversation("console", "me", "", T0)
    for n in range(4):
        await save(store, conv, n, T0)
    got = await store.conversations.history(conv, limit=3, since=T0)
    assert [e.user_text for e in got] == ["question 1", "question 2", "question 3"]


async def test_timestamps_round_trip_as_utc(store: Store) -> None:
    conv = await store.conversations.open_conversation("telegram", "tz", "", T0)
    local = datetime(2026, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))  # == T0
    await save(store, conv, 1, local)
    (got,) = await store.conversations.history(conv, limit=1, since=T0)
    assert got.created_at == T0
    assert got.created_at.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive datetime"):
        await store.conversations.history(conv, limit=1, since=datetime(2026, 3, 1))


async def test_save_exchange_stores_turn_calls_and_audit(store: Store) -> None:
    conv = await store.conversations.open_conversation("telegram", "1", "", T0)
    await store.conversations.save_exchange(
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
    calls = await store.statistics.calls_since(T0)
    assert [(c.attempt, c.outcome, c.http_status, c.conversation_id) for c in calls] == [
        (1, "server", 503, None),
        (2, "ok", 200, conv),
    ]
    assert calls[1] == call(T0, attempt=2, conversation_id=conv)
    assert await store.statistics.calls_since(T0 + timedelta(seconds=1)) == []
    async with store.engine.connect() as conn:
        params = (await conn.execute(select(AuditRow.params))).scalar_one()
    assert params == '{"chars": 5, "lang": "中文"}'


async def test_save_exchange_is_atomic(store: Store) -> None:
    conv = await store.conversations.open_conversation("telegram", "1", "", T0)
    bad = call(T0, model=None)  # violates NOT NULL after the turn row was inserted
    with pytest.raises(Exception, match=r"(?i)not null|null value"):
        await store.conversations.save_exchange(
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
    assert await store.conversations.history(conv, limit=10, since=T0) == []


async def test_reset_conversation(store: Store) -> None:
    a = await store.conversations.open_conversation("telegram", "1", "", T0)
    b = await store.conversations.open_conversation("telegram", "2", "", T0)
    for n in range(3):
        await save(store, a, n, T0)
    await save(store, b, 9, T0)
    assert await store.conversations.reset_conversation(a) == 3
    assert await store.conversations.reset_conversation(a) == 0
    assert await store.conversations.history(a, limit=10, since=T0) == []
    assert len(await store.conversations.history(b, limit=10, since=T0)) == 1

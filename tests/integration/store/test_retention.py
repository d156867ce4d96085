"""Retention: what the purge deletes, in batches, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.store import AuditRecord, Store
from bot.store.models import Turn
from tests.integration.store.helpers import T0, call, count, save


async def test_purge_counts(store: Store) -> None:
    conv = await store.conversations.open_conversation("telegram", "1", "", T0)
    for n in range(5):
        at = T0 + timedelta(hours=n)
        await save(store, conv, n, at)
        await store.inbox.claim_event("telegram", f"e{n}", "u1", at)
        await store.records.record_calls([call(at)], [AuditRecord(at, "telegram", "u1", "answer", {})])
    cutoff = T0 + timedelta(hours=3)
    counts = await store.retention.purge(
        turns_before=cutoff, inbox_before=T0 + timedelta(hours=1), audit_before=cutoff
    )
    assert counts == {
        "turns": 3,
        "summaries": 0,
        "inbox": 1,
        "votes": 0,
        "answer_messages": 0,
        "inbox_targets": 0,
        "audit": 3,
        "llm_calls": 0,
    }
    counts = await store.retention.purge(
        turns_before=cutoff, inbox_before=T0, audit_before=T0, calls_before=cutoff
    )
    assert counts == {
        "turns": 0,
        "summaries": 0,
        "inbox": 0,
        "votes": 0,
        "answer_messages": 0,
        "inbox_targets": 0,
        "audit": 0,
        "llm_calls": 3,
    }
    assert [e.user_text for e in await store.conversations.history(conv, limit=10, since=T0)] == [
        "question 3",
        "question 4",
    ]


async def test_purge_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.store.retention.PURGE_BATCH", 4)
    conv = await store.conversations.open_conversation("telegram", "1", "", T0)
    for n in range(10):
        await save(store, conv, n, T0)
    counts = await store.retention.purge(
        turns_before=T0 + timedelta(seconds=1), inbox_before=T0, audit_before=T0
    )
    assert counts["turns"] == 10
    assert await count(store, Turn) == 0

"""Many conversations at once on one database: no errors, in particular no "database is locked"."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from bot.store import CallRecord, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONVERSATIONS = 200


async def one_message(store: Store, n: int) -> None:
    now = T0 + timedelta(milliseconds=n)
    conv = await store.conversations.open_conversation("telegram", f"chat-{n}", "", now)
    assert await store.inbox.claim_event("telegram", f"event-{n}", f"user-{n}", now)
    granted, _, _ = await store.quota.quota_take({"minute": "2026-03-01T12:00"}, {"minute": 0}, 1)
    assert granted == 1
    history = await store.conversations.history(conv, limit=10, since=T0)
    await store.conversations.save_exchange(
        conversation_id=conv,
        user_id=f"user-{n}",
        user_text=f"question {n} ({len(history)} before)",
        model_text=f"answer {n}",
        prompt_tokens=10,
        output_tokens=20,
        finish_reason="STOP",
        model="gemini-2.5-flash",
        now=now,
        calls=[CallRecord(now, "telegram", "gemini-2.5-flash", "https://example", 1, "ok", 200, None, 5.0)],
    )
    await store.inbox.finish_event("telegram", f"event-{n}", "answered", now, conversation_id=conv)


async def test_200_concurrent_conversations(store: Store, capsys: object) -> None:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(one_message(store, n) for n in range(CONVERSATIONS)), return_exceptions=True
    )
    elapsed = time.perf_counter() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    assert await store.quota.quota_count("minute", "2026-03-01T12:00") == CONVERSATIONS
    counts = await store.statistics.activity_counts(T0)
    assert counts.messages_answered == CONVERSATIONS
    assert counts.active_conversations == CONVERSATIONS
    assert len(await store.statistics.calls_since(T0)) == CONVERSATIONS
    print(f"\n{CONVERSATIONS} concurrent conversations on {store.engine.dialect.name}: {elapsed:.2f}s")

"""The inbox, on SQLite and (when reachable) PostgreSQL: deduplication, answer state, follow-ups."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot.store import Store
from bot.store.models import Inbox
from tests.integration.store.helpers import T0


async def test_claim_event_deduplicates(store: Store) -> None:
    assert await store.inbox.claim_event("telegram", "e1", "u1", T0) is True
    assert await store.inbox.claim_event("telegram", "e1", "u1", T0) is False
    assert await store.inbox.claim_event("slack", "e1", "u1", T0) is True


async def test_concurrent_claims_of_one_event_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.inbox.claim_event("slack", "Ev1", "U1", T0) for _ in range(30)))
    assert results.count(True) == 1


async def test_finish_and_unanswered_events(store: Store) -> None:
    for n in range(3):
        await store.inbox.claim_event(
            "telegram",
            f"e{n}",
            f"u{n}",
            T0 + timedelta(seconds=n),
            chat_key=f"c{n}",
            thread_key="7" if n == 2 else "",
            reply_to={"message_id": str(40 + n)},
            language="zh-hans",
        )
    await store.inbox.claim_event("slack", "s1", "U1", T0)
    await store.inbox.claim_event("telegram", "inline:1", "u9", T0)  # no chat: nowhere to follow up
    await store.inbox.finish_event("telegram", "e0", "answered", T0 + timedelta(seconds=5), conversation_id=7)
    await store.inbox.finish_event("telegram", "e1", "failed", T0 + timedelta(seconds=5))
    # Where the answer is being written is recorded while the event is unanswered, and only then.
    await store.inbox.set_reply_to("telegram", "e2", {"message_id": "42", "answer": "77"})
    await store.inbox.set_reply_to("telegram", "e0", {"message_id": "40", "answer": "78"})
    [left] = await store.inbox.unanswered_events("telegram", T0 + timedelta(minutes=1))
    assert (left.event_id, left.user_id, left.chat_key, left.thread_key) == ("e2", "u2", "c2", "7")
    assert left.reply_to == {"message_id": "42", "answer": "77"} and left.language == "zh-hans"
    assert await store.inbox.unanswered_events("telegram", T0 + timedelta(seconds=1)) == []
    # Taking one over is atomic: only the first of two replicas gets it, and it is no longer unanswered.
    later = T0 + timedelta(minutes=1)
    results = await asyncio.gather(
        *(store.inbox.take_unanswered("telegram", "e2", T0, later) for _ in range(2))
    )
    assert sorted(results) == [False, True]
    assert await store.inbox.unanswered_events("telegram", later) == []
    # A follow-up's answer stays: finishing an orphaned row later changes nothing.
    await store.inbox.finish_event("telegram", "e2", "answered", later)
    assert await store.inbox.unanswered_events("telegram", later) == []
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
        await store.inbox.claim_event("slack", f"a{n}", "U1", T0, chat_key="C1")
    shared = store.engine.dialect.name == "postgresql"
    assert await store.inbox.start_answer("slack", "a0", T0 + timedelta(seconds=10))
    assert await store.inbox.start_answer("slack", "a1", T0 + timedelta(minutes=10))
    cut_off = T0 + timedelta(minutes=5)
    unfinished = sorted(row.event_id for row in await store.inbox.unanswered_events("slack", cut_off))
    assert unfinished == (["a0", "a2"] if shared else ["a0", "a1", "a2"])
    assert await store.inbox.take_unanswered("slack", "a2", cut_off, cut_off)
    # The replica that held a2 back reaches it now: it was taken over, so it is not answered again.
    assert await store.inbox.start_answer("slack", "a2", cut_off) is not shared
    assert (
        await store.inbox.take_unanswered("slack", "a1", cut_off, cut_off) is not shared
    )  # live answer kept

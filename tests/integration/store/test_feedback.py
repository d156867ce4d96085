"""Votes on answers in the store: satisfaction per window and retention, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from bot.store import Satisfaction, Store
from tests.integration.store.helpers import T0


async def test_satisfaction_counts_the_votes_standing_in_the_window(store: Store) -> None:
    feedback = store.feedback
    for n in range(3):
        await store.inbox.claim_event("telegram", f"e{n}", f"asker{n}", T0)
        assert await feedback.note_answer("telegram", f"e{n}", "-1", [f"m{n}", f"m{n}b"], T0) == 2
    assert await feedback.note_answer("telegram", "unknown", "-1", ["m9"], T0) == 0
    assert await feedback.note_answer("telegram", "e0", "-1", ["m0"], T0) == 1  # again: no duplicate row

    async def vote(message: str, user: str, value: str | None, hours: int) -> bool:
        at = T0 + timedelta(hours=hours)
        return await feedback.vote("telegram", "-1", message, user, value=value, now=at)  # type: ignore[arg-type]

    assert await vote("m0", "a", "up", 0)
    assert await vote("m1", "a", "down", 0)
    assert await vote("m1b", "b", "up", 30)  # the other message of the same answer
    assert await vote("m2", "b", "down", 1)
    assert await vote("m2b", "b", "up", 40)  # changed, and recast later
    assert not await vote("m9", "a", "up", 0)
    assert await feedback.satisfaction(T0) == Satisfaction(up=3, down=1)
    assert await feedback.satisfaction(T0 + timedelta(hours=24)) == Satisfaction(up=2, down=0)
    assert (await feedback.satisfaction(T0)).share == 0.75
    assert Satisfaction().share is None

    counts = await store.retention.purge(
        turns_before=T0, inbox_before=T0 + timedelta(hours=2), audit_before=T0
    )
    assert (counts["inbox"], counts["votes"], counts["answer_messages"]) == (3, 2, 6)
    assert await feedback.satisfaction(T0) == Satisfaction(up=2, down=0)

"""The counters of the local Gemini quota, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import asyncio

from bot.store import Store


async def test_quota_take_and_count(store: Store) -> None:
    day = {"day": "2026-03-01"}
    assert await store.quota.quota_count("day", "2026-03-01") == 0
    assert [(await store.quota.quota_take(day, {"day": 2}, 1))[::2] for _ in range(3)] == [
        (1, {"day": 1}),
        (1, {"day": 2}),
        (0, {"day": 2}),
    ]
    assert await store.quota.quota_take({"day": "2026-03-02"}, {"day": 2}, 1) == (1, "", {"day": 1})
    minute = {"minute": "2026-03-01T12:00"}
    assert await store.quota.quota_take(minute, {"minute": 0}, 1) == (1, "", {"minute": 1})
    for _ in range(5):
        await store.quota.quota_take(minute, {"minute": 0}, 1)
    assert await store.quota.quota_count("minute", "2026-03-01T12:00") == 6
    assert await store.quota.quota_count("day", "2026-03-01") == 2


async def test_quota_take_is_all_or_nothing_across_windows(store: Store) -> None:
    windows = {"minute": "2026-03-01T12:00", "day": "2026-03-01"}
    assert await store.quota.quota_take(windows, {"minute": 0, "day": 3}, 5) == (
        3,
        "day",
        {"minute": 3, "day": 3},
    )
    assert await store.quota.quota_take(windows, {"minute": 0, "day": 3}, 1) == (
        0,
        "day",
        {"minute": 3, "day": 3},
    )
    # Both full: the day names the refusal (the minute's reset would not free anything).
    assert await store.quota.quota_take(windows, {"minute": 3, "day": 3}, 1) == (
        0,
        "day",
        {"minute": 3, "day": 3},
    )
    # Room for exactly what is wanted refuses nothing.
    assert await store.quota.quota_take(windows, {"minute": 5, "day": 5}, 2) == (
        2,
        "",
        {"minute": 5, "day": 5},
    )


async def test_quota_concurrent_tasks_never_overspend(store: Store) -> None:
    month = {"month": "2026-03"}
    results = await asyncio.gather(*(store.quota.quota_take(month, {"month": 20}, 1) for _ in range(50)))
    assert sum(granted for granted, _, _ in results) == 20
    assert sorted(counts["month"] for granted, _, counts in results if granted) == list(range(1, 21))
    assert await store.quota.quota_count("month", "2026-03") == 20

"""PostgresSequencer against the real server: FIFO across replicas, one connection for many
conversations, and no lock left behind by a cancelled waiter, a broken connection or a dead replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.sequencer import PostgresSequencer, advisory_key, lock_namespace
from bot.store import create_engine

KEY = ("telegram", "chat-1", "")


@pytest.fixture
async def sequencers(pg_url: str) -> AsyncIterator[list[PostgresSequencer]]:
    made = [PostgresSequencer(pg_url, waiters=4) for _ in range(3)]
    yield made
    for sequencer in made:
        await sequencer.aclose()


async def advisory_locks(
    url: str, key: tuple[str, ...] | None = None, *, keys: list[tuple[str, ...]] | None = None
) -> list[tuple[int, bool]]:
    """(pid, granted) of every advisory lock on ``key``, or on any of ``keys`` (or on any key) in the
    database (other test runs on the same database hold locks of their own: name the keys when counting)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid, granted, (classid::bigint << 32) | objid::bigint AS id FROM pg_locks "
                    "WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            chosen = [key] if key is not None else keys
            wanted = None if chosen is None else {advisory_key(k, lock_namespace(url)) for k in chosen}
            return [(row.pid, row.granted) for row in rows if wanted is None or row.id in wanted]
    finally:
        await engine.dispose()


async def wait_for_locks(url: str, key: tuple[str, ...], granted: int, waiting: int) -> None:
    """Poll pg_locks until ``key`` has that many granted and waiting requests (5 s at most)."""
    async with asyncio.timeout(5):
        while True:
            locks = await advisory_locks(url, key)
            if (sum(g for _, g in locks), sum(not g for _, g in locks)) == (granted, waiting):
                return
            await asyncio.sleep(0.02)


async def test_replicas_take_a_conversation_first_come_first_served(
    sequencers: list[PostgresSequencer], pg_url: str
) -> None:
    order: list[str] = []
    release_first = asyncio.Event()

    async def answer(
        sequencer: PostgresSequencer, name: str, hold_until: asyncio.Event | None = None
    ) -> None:
        async with sequencer.hold(KEY):
            order.append(name)
            if hold_until is not None:
                await hold_until.wait()
            else:
                await asyncio.sleep(0.05)

    one, two, three = sequencers
    tasks = [asyncio.create_task(answer(one, "1", release_first))]
    try:
        await wait_for_locks(pg_url, KEY, granted=1, waiting=0)
        # 2 and 3 queue behind 1 in PostgreSQL, each once the one before is queued (pg_locks shows it).
        for waiting, (sequencer, name) in enumerate(((two, "2"), (three, "3")), start=1):
            tasks.append(asyncio.create_task(answer(sequencer, name)))
            await wait_for_locks(pg_url, KEY, granted=1, waiting=waiting)
        # 1's own next message waits in the process for 1, then in PostgreSQL behind 2 and 3.
        tasks.append(asyncio.create_task(answer(one, "1b")))
        await asyncio.sleep(0.1)
        assert order == ["1"]
        release_first.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        assert order == ["1", "2", "3", "1b"]
        assert two.contended == 1 and three.contended == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_many_conversations_share_one_connection(
    sequencers: list[PostgresSequencer], pg_url: str
) -> None:
    sequencer = sequencers[0]
    inside = asyncio.Event()
    go = asyncio.Event()
    entered = 0

    async def answer(n: int) -> None:
        nonlocal entered
        async with sequencer.hold(("slack", f"C{n}", "")):
            entered += 1
            if entered == 200:
                inside.set()
            await go.wait()

    tasks = [asyncio.create_task(answer(n)) for n in range(200)]
    await asyncio.wait_for(inside.wait(), 10)
    keys = [("slack", f"C{n}", "") for n in range(200)]
    locks = await advisory_locks(pg_url, keys=keys)
    assert len(locks) == 200 and all(granted for _, granted in locks)
    assert len({pid for pid, _ in locks}) == 1  # one holder connection for every conversation
    go.set()
    await asyncio.gather(*tasks)
    assert await advisory_locks(pg_url, keys=keys) == []
    assert sequencer.contended == 0 and len(sequencer) == 0


async def test_a_cancelled_waiter_leaves_no_lock_behind(
    sequencers: list[PostgresSequencer], pg_url: str
) -> None:
    one, two, three = sequencers
    release = asyncio.Event()

    async def hold_until_released() -> None:
        async with one.hold(KEY):
            await release.wait()

    holder = asyncio.create_task(hold_until_released())
    await wait_for_locks(pg_url, KEY, granted=1, waiting=0)
    waiter = asyncio.create_task(two.hold(KEY).__aenter__())
    await wait_for_locks(pg_url, KEY, granted=1, waiting=1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    async with asyncio.timeout(5), three.hold(KEY):
        assert len(await advisory_locks(pg_url, KEY)) == 1
    assert await advisory_locks(pg_url, KEY) == []


async def test_deployments_in_other_schemas_do_not_share_locks(
    sequencers: list[PostgresSequencer], pg_url: str
) -> None:
    """Advisory locks are database-wide; two gembots in two schemas of one database must not serialize
    each other's chats of the same key."""
    other_schema = pg_url.replace(lock_namespace(pg_url), "gembot_other_deployment")
    other = PostgresSequencer(other_schema, waiters=2)
    try:
        async with sequencers[0].hold(KEY), asyncio.timeout(5), other.hold(KEY):
            assert other.contended == 0  # taken at once: a different lock
    finally:
        await other.aclose()


async def test_a_dead_replica_does_not_block_the_conversation(
    sequencers: list[PostgresSequencer], pg_url: str
) -> None:
    one, two, _ = sequencers
    entered = asyncio.Event()

    async def dies_while_answering() -> None:
        async with one.hold(KEY):
            entered.set()
            await asyncio.sleep(3600)

    doomed = asyncio.create_task(dies_while_answering())
    await entered.wait()
    [(pid, _)] = await advisory_locks(pg_url, KEY)
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:  # the replica's connection is gone (crash, network)
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await engine.dispose()
    async with asyncio.timeout(5), two.hold(KEY):
        pass
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    # The replica's holder connection reconnects on its next message.
    async with asyncio.timeout(5), one.hold(("telegram", "other", "")):
        pass

"""Two replicas (Apps) on one PostgreSQL database and one Redis: ordering, dedup, shared limits and quota."""

from __future__ import annotations

import asyncio

from bot.app import App
from bot.domain import FinalAnswer, Notice, NoticeKind
from bot.sequencer import PostgresSequencer
from tests.fakes.gemini import GeminiEmulator
from tests.helpers import answer_text, collect, eventually, incoming, terminal
from tests.integration.scaleout.conftest import ReplicaFactory


async def test_one_conversation_split_across_replicas_is_answered_in_order_with_context(
    replicas: ReplicaFactory, gemini: GeminiEmulator
) -> None:
    a: App = await replicas()
    b: App = await replicas()
    gemini.latency = 0.15
    texts = [f"m{i}" for i in range(6)]
    tasks = []
    for i, text in enumerate(texts):
        # Alternate replicas; each message arrives while the earlier ones are still being answered. The next
        # is sent once this one has its place (a fixed pause would not order them on a loaded machine): the
        # first is being answered; each later one found the conversation locked by the other replica.
        replica = (a, b)[i % 2]
        tasks.append(asyncio.create_task(collect(replica, incoming(text, chat="shared"))))
        sequencer = replica.engine.sequencer
        assert isinstance(sequencer, PostgresSequencer)
        if i == 0:
            await eventually(lambda: len(gemini.requests) == 1)
        else:
            await eventually(lambda s=sequencer, n=(i + 1) // 2: s.contended == n)
    results = await asyncio.gather(*tasks)
    assert [answer_text(r) for r in results] == [f"echo: {t}" for t in texts]
    # Gemini saw them one after the other, each with every earlier exchange as context.
    assert [r.contents()[-1][1] for r in gemini.requests] == texts
    for i, request in enumerate(gemini.requests):
        expected: list[tuple[str, str]] = []
        for earlier in texts[:i]:
            expected += [("user", earlier), ("model", f"echo: {earlier}")]
        assert request.contents() == [*expected, ("user", texts[i])]
    for app in (a, b):
        sequencer = app.engine.sequencer
        assert isinstance(sequencer, PostgresSequencer)
        assert sequencer.contended > 0  # they really met in PostgreSQL's lock queue
        assert app.engine.locks_in_use == 0


async def test_the_same_event_on_both_replicas_is_answered_once(
    replicas: ReplicaFactory, gemini: GeminiEmulator
) -> None:
    a: App = await replicas()
    b: App = await replicas()
    gemini.latency = 0.1
    for n in range(5):
        event = f"dup-{n}"
        results = await asyncio.gather(
            collect(a, incoming("once", chat=f"d{n}", event_id=event)),
            collect(b, incoming("once", chat=f"d{n}", event_id=event)),
        )
        assert sorted(len(r) > 0 for r in results) == [False, True]
    assert len(gemini.requests) == 5


async def test_per_user_rate_limit_holds_across_replicas(
    replicas: ReplicaFactory, gemini: GeminiEmulator
) -> None:
    limits = {"rate_limits": {"per_user": "3/minute", "per_chat": ""}}
    a: App = await replicas(**limits)
    b: App = await replicas(**limits)
    ends = [
        terminal(await collect((a, b)[i % 2], incoming(f"r{i}", user="busy", chat=f"chat-{i}")))
        for i in range(6)
    ]
    assert [isinstance(end, FinalAnswer) for end in ends] == [True] * 3 + [False] * 3
    assert all(end.kind is NoticeKind.RATE_LIMITED for end in ends[3:] if isinstance(end, Notice))
    assert len(gemini.requests) == 3
    # Another user has their own allowance on either replica.
    answer_text(await collect(b, incoming("hi", user="calm", chat="calm")))


async def test_local_gemini_quota_is_shared_through_the_database(
    replicas: ReplicaFactory, gemini: GeminiEmulator
) -> None:
    quota = {"gemini": {"quota": {"requests_per_minute": 3, "requests_per_day": 0, "requests_per_month": 0}}}
    a: App = await replicas(**quota)
    b: App = await replicas(**quota)
    results = await asyncio.gather(
        *(collect((a, b)[i % 2], incoming(f"q{i}", user=f"u{i}", chat=f"c{i}")) for i in range(6))
    )
    ends = [terminal(r) for r in results]
    assert sum(isinstance(end, FinalAnswer) for end in ends) == 3
    assert sorted(end.kind for end in ends if isinstance(end, Notice)) == [NoticeKind.QUOTA] * 3
    assert len(gemini.requests) == 3

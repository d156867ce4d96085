"""The latency recorded for a Gemini call is Gemini's time, not the time the consumer spent on the chunks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.app import App
from bot.domain import Delta
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import Behaviour, CutStream, Reply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import incoming
from tests.integration.resilience.conftest import AppMaker, outcomes

HELD_S = 20.0  # virtual seconds the consumer spends on each chunk (a slow platform edit, say)


def latencies_ms(db_path: Path) -> list[float]:
    with sqlite3.connect(db_path) as db:
        return [r[0] for r in db.execute("SELECT latency_ms FROM llm_calls ORDER BY id")]


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        (Reply(chunks=["one ", "two ", "three"]), "ok"),
        (CutStream(["one ", "two "], abrupt=True), "stream_cut"),
    ],
    ids=["answered", "stream-cut"],
)
async def test_time_the_consumer_holds_a_chunk_is_not_counted_as_gemini_latency(
    make_app: AppMaker,
    gemini: Emulator,
    clock: FakeClock,
    db_path: Path,
    behaviour: Behaviour,
    outcome: str,
) -> None:
    app: App = await make_app()
    gemini.script(behaviour)
    held = 0
    async for event in app.engine.handle(incoming("hi")):
        if isinstance(event, Delta):
            clock.advance(HELD_S)  # the answer's generator is paused at its yield meanwhile
            held += 1
    assert held >= 2
    assert outcomes(db_path) == [outcome]
    (latency_ms,) = latencies_ms(db_path)
    assert 0 < latency_ms < HELD_S * 1000
    recorded = app.metrics.registry.get_sample_value(
        "gembot_gemini_latency_seconds_sum", {"model": "gemini-2.5-flash"}
    )
    assert recorded is not None and recorded == pytest.approx(latency_ms / 1000)

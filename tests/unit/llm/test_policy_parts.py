"""Pure parts of the resilience layer: circuit breaker, backoff, context shortening, the alert hub."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given
from hypothesis import strategies as st

from bot.alerts import AlertHub
from bot.domain import AdminAlert
from bot.llm.circuit import CircuitBreaker, CircuitBreakers, CircuitState
from bot.llm.policy import full_jitter_backoff, shorten_context
from bot.llm.types import ChatMessage, LlmRequest
from tests.fakes.clock import FakeClock


def breaker(clock: FakeClock, threshold: int = 3, cooldown: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker("host/model", threshold=threshold, cooldown=cooldown, clock=clock)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock(frozen=True)
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    b.success()  # a success in between resets the count
    for _ in range(2):
        b.failure()
    assert b.state is CircuitState.CLOSED
    b.failure()
    assert b.state is CircuitState.OPEN
    assert not b.allow()
    assert b.retry_in() == 30.0


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FakeClock(frozen=True)
    b = breaker(clock, threshold=1)
    b.failure()
    clock.advance(30)
    assert b.state is CircuitState.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # a second caller while the probe is out fails fast
    b.failure()  # the probe failed: open again for a full cool-down
    assert b.state is CircuitState.OPEN and not b.allow()
    clock.advance(30)
    assert b.allow()
    b.success()
    assert b.state is CircuitState.CLOSED
    assert b.allow() and b.allow()


def test_released_probe_frees_the_slot() -> None:
    clock = FakeClock(frozen=True)
    b = breaker(clock, threshold=1)
    b.failure()
    clock.advance(31)
    assert b.allow()
    b.release()
    assert b.allow()


def test_release_keeps_the_state_a_rate_limited_probe_stays_half_open() -> None:
    clock = FakeClock(frozen=True)
    b = breaker(clock, threshold=2)
    b.failure()
    b.release()  # a 429 in a closed circuit: not a failure, and the count is not reset either
    b.failure()
    assert b.state is CircuitState.OPEN
    clock.advance(30)
    assert b.allow()
    b.release()  # the probe got a 429
    assert b.state is CircuitState.HALF_OPEN
    assert b.allow()  # the next call is the next probe


def test_threshold_zero_disables_the_breaker() -> None:
    b = breaker(FakeClock(frozen=True), threshold=0)
    for _ in range(100):
        b.failure()
    assert b.allow() and b.state is CircuitState.CLOSED


def test_breakers_are_per_base_url_and_model() -> None:
    clock = FakeClock(frozen=True)
    breakers = CircuitBreakers(threshold=1, cooldown=30, clock=clock)
    breakers.get("https://a.example", "m1").failure()
    assert not breakers.get("https://a.example", "m1").allow()
    assert breakers.get("https://a.example", "m2").allow()
    assert breakers.get("https://b.example", "m1").allow()
    assert breakers.get("https://a.example", "m1").name == "a.example/m1"


@given(
    retry=st.integers(min_value=1, max_value=50),
    initial=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=100),
    seed=st.integers(),
)
def test_full_jitter_backoff_stays_within_its_envelope(
    retry: int, initial: float, cap: float, seed: int
) -> None:
    wait = full_jitter_backoff(retry, initial, cap, random.Random(seed))
    assert 0 <= wait <= min(cap, initial * 2 ** (retry - 1)) + 1e-9


def _request(*texts: str) -> LlmRequest:
    roles = ["user", "model"]
    return LlmRequest(
        contents=tuple(ChatMessage(roles[i % 2], t) for i, t in enumerate(texts))  # type: ignore[arg-type]
    )


def test_shorten_context_drops_the_older_half_and_keeps_the_last_user_message() -> None:
    request = _request("u1", "m1", "u2", "m2", "u3", "m3", "u4", "m4", "now")
    shorter = shorten_context(request)
    assert shorter is not None
    assert [c.text for c in shorter.contents] == ["u3", "m3", "u4", "m4", "now"]
    one = shorten_context(_request("u1", "m1", "now"))
    assert one is not None and [c.text for c in one.contents] == ["now"]
    assert shorten_context(_request("now")) is None


async def test_alert_hub_fans_out_once_per_interval_per_kind() -> None:
    clock = FakeClock(frozen=True)
    hub = AlertHub(clock, interval=600)
    got_a: list[AdminAlert] = []
    got_b: list[AdminAlert] = []

    async def a(alert: AdminAlert) -> None:
        got_a.append(alert)

    async def broken(alert: AdminAlert) -> None:
        raise RuntimeError("delivery failed")

    async def b(alert: AdminAlert) -> None:
        await asyncio.sleep(0)
        got_b.append(alert)

    hub.subscribe(a)
    hub.subscribe(broken)
    unsubscribe = hub.subscribe(b)
    assert hub.publish(AdminAlert("bad_key", "key rejected"))
    assert not hub.publish(AdminAlert("bad_key", "key rejected"))
    assert hub.publish(AdminAlert("other", "something else"))  # another kind is not held back
    await hub.drain()
    assert [x.kind for x in got_a] == ["bad_key", "other"]
    assert [x.kind for x in got_b] == ["bad_key", "other"]
    clock.advance(600)
    unsubscribe()
    assert hub.publish(AdminAlert("bad_key", "still rejected"))
    await hub.drain()
    assert len(got_a) == 3 and len(got_b) == 2
    await hub.aclose()

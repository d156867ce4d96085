"""Outbound flood control (measured) and in-order processing within a chat, concurrent across chats."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram import Update

from adapters.telegram.adapter import ChatOrderedProcessor
from adapters.telegram.outbox import TYPING_REFRESHES, FloodControl, Outbox, Scope, SlidingWindow
from bot.config import OutboundTelegramLimits
from tests.fakes.telegram import TelegramEmulator


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def flood(clock: FakeClock, **limits: float) -> FloodControl:
    return FloodControl(OutboundTelegramLimits(**limits), clock=clock)


async def test_one_message_per_second_per_chat() -> None:
    clock = FakeClock()
    control = flood(clock)
    await control.acquire(5)
    await control.acquire(6)  # another chat is independent
    clock.now += 0.9
    assert control.delay(5) == pytest.approx(0.1)
    clock.now += 0.1
    assert control.delay(5) == 0


async def test_twenty_per_minute_per_group() -> None:
    clock = FakeClock()
    control = flood(clock, per_chat_per_second=0)
    for _ in range(20):
        assert control.delay(-7) == 0
        await control.acquire(-7)
        clock.now += 1
    assert control.delay(-7) == pytest.approx(40)
    clock.now += 40  # the first of the twenty leaves the window
    assert control.delay(-7) == 0


async def test_thirty_per_second_overall_and_zero_turns_a_limit_off() -> None:
    clock = FakeClock()
    control = flood(clock)
    for chat in range(1, 31):
        await control.acquire(chat)
    assert control.delay(99) == pytest.approx(1.0)
    assert control.delay(99, Scope.DRAFT) == pytest.approx(1.0)  # drafts count overall too
    assert control.delay(99, Scope.ACTION) == 0  # typing does not
    unlimited = flood(clock, global_per_second=0, per_chat_per_second=0, per_group_per_minute=0)
    for _ in range(1000):
        await unlimited.acquire(-1)
    assert unlimited.delay(-1) == 0


def test_typing_refreshes_have_a_bot_wide_budget_even_with_limits_off() -> None:
    clock = FakeClock()
    control = flood(clock, global_per_second=0, per_chat_per_second=0, per_group_per_minute=0)
    refreshes = [control.try_acquire(chat, Scope.REFRESH) for chat in range(TYPING_REFRESHES + 5)]
    assert [t is not None for t in refreshes] == [True] * TYPING_REFRESHES + [False] * 5
    assert control.try_acquire(999, Scope.ACTION) is not None  # an answer's first typing is never skipped
    assert control.delay(999) == 0  # and messages are not held back by refreshes
    clock.now += 1.01
    assert control.try_acquire(1, Scope.REFRESH) is not None


async def test_previews_use_at_most_half_of_a_window() -> None:
    clock = FakeClock()
    control = flood(clock, per_chat_per_second=0)
    taken = [control.try_acquire(-7, Scope.MESSAGE) for _ in range(12)]
    assert [t is not None for t in taken] == [True] * 10 + [False] * 2
    assert control.delay(-7) == 0  # the final message still has room


async def test_a_slot_counts_until_a_period_after_the_answer() -> None:
    clock = FakeClock()
    control = flood(clock)
    ticket = await control.acquire(5)
    clock.now += 0.5
    control.done(ticket)  # the request took 0.5 s
    clock.now += 0.9
    assert control.delay(5) == pytest.approx(0.1)
    clock.now += 0.1
    assert control.delay(5) == 0


def test_a_429_pauses_the_chat() -> None:
    clock = FakeClock()
    control = flood(clock)
    control.pause(5, 3.0)
    clock.now += 2
    assert control.try_acquire(5, Scope.ACTION) is None
    assert control.delay(6) == 0
    clock.now += 1.1
    assert control.delay(5) == 0


def test_sliding_window_rates() -> None:
    window = SlidingWindow.per(0.5, 1.0)
    assert window is not None and (window.limit, window.period) == (1, 2.0)
    assert SlidingWindow.per(0, 1.0) is None


async def test_measured_spacing_of_messages_to_one_chat() -> None:
    outbox = Outbox(FloodControl(OutboundTelegramLimits(per_chat_per_second=10)))
    stamps: list[float] = []

    async def send() -> None:
        stamps.append(time.monotonic())

    await asyncio.gather(*(outbox.call(1, send) for _ in range(12)))
    # Ten may go at once; the eleventh and twelfth wait until the first ones leave the 1 s window.
    busiest = max(sum(1 for t in stamps[i:] if t - s < 1.0) for i, s in enumerate(stamps))
    assert busiest == 10
    assert stamps[-1] - stamps[0] >= 1.0


async def test_optional_calls_yield_to_waiting_messages() -> None:
    control = FloodControl(OutboundTelegramLimits())
    assert control.try_acquire(1, Scope.MESSAGE) is not None
    waiter = asyncio.create_task(control.acquire(1, Scope.MESSAGE))
    await asyncio.sleep(0)
    assert control.try_acquire(2, Scope.DRAFT) is None  # someone waits: previews step aside
    await waiter


async def test_updates_run_in_order_within_a_chat_and_concurrently_across_chats() -> None:
    tg = TelegramEmulator()
    a, b = tg.group(-1, "A"), tg.group(-2, "B")
    user = tg.user(1, "U")

    def upd(chat: dict[str, object]) -> Update:
        return Update.de_json(
            {
                "update_id": 1,
                "message": tg._user_message(chat, user, "x", None, None, None, None, None, None),
            },
            None,
        )

    processor = ChatOrderedProcessor(100)
    done: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(name)

    await asyncio.gather(
        processor.process_update(upd(a), work("a1", 0.2)),
        processor.process_update(upd(a), work("a2", 0.0)),
        processor.process_update(upd(b), work("b1", 0.05)),
    )
    assert done == ["b1", "a1", "a2"]

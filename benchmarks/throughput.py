"""Throughput: 100 users sending continuously (each sends again as soon as it has its answer), 0 ms Gemini.

Closed loop: the emulator queues a user's next message inside the sendMessage that answers the previous
one, so there are always ``users`` messages in flight. Answers are counted over a fixed window after a
warm-up; the same loop runs against the bare echo bot (the floor) in the same run.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchTelegram,
    Process,
    Users,
    calls_per_answer,
    cpu_seconds,
    start_echo,
    start_gembot,
    stop,
    wait_until,
)


async def closed_loop(
    tg: BenchTelegram, proc: Process, users: int, warmup: float, seconds: float, first_id: int
) -> dict[str, Any]:
    crowd = Users(tg, first_id, users)
    index = {chat["id"]: i for i, chat in enumerate(crowd.chats)}
    sent = [0] * users
    running = True
    window: dict[str, float] = {"start": float("inf"), "end": float("inf")}
    counted = 0

    def on_answer(chat_id: int, at: float) -> None:
        nonlocal counted
        i = index.get(chat_id)
        if i is None:
            return
        if window["start"] <= at < window["end"]:
            counted += 1
        if running:
            sent[i] += 1
            crowd.send(i, f"message {sent[i]} from user {i}")

    tg.on_answer = on_answer
    for i in range(users):
        crowd.send(i, f"message 0 from user {i}")
    begun = time.monotonic()
    window["start"] = begun + warmup
    window["end"] = window["start"] + seconds
    await wait_until(lambda: time.monotonic() >= window["start"], warmup + 1, step=0.05)
    cpu0 = cpu_seconds(proc.pid)
    answers0 = tg.answers
    calls0 = Counter(tg.method_counts)
    await wait_until(lambda: time.monotonic() >= window["end"], seconds + 1, step=0.05)
    cpu = cpu_seconds(proc.pid) - cpu0
    running = False
    total_in_window = tg.answers - answers0
    window_calls = Counter(tg.method_counts)
    window_calls.subtract(calls0)
    # Let the messages in flight finish (bounded), so the process stops cleanly.
    await wait_until(lambda: tg.answers >= sum(sent) + users, 20, step=0.05)
    tg.on_answer = None
    if total_in_window == 0:
        raise RuntimeError(f"{proc.name}: no answers in the window:\n{proc.log_tail()}")
    return {
        "users": users,
        "seconds": seconds,
        "answers": counted,
        "messages_per_s": counted / seconds,
        "cpu_s": cpu,
        "cpu_ms_per_message": cpu / counted * 1000 if counted else float("nan"),
        "cpu_share": cpu / seconds,
        "calls": dict(tg.method_counts),
        "calls_per_answer": calls_per_answer(window_calls, total_in_window),
    }


async def run_echo(workdir: Path, users: int, warmup: float, seconds: float) -> dict[str, Any]:
    async with BenchTelegram() as tg:
        proc = await start_echo(workdir / "echo-throughput", tg.base_url)
        try:
            return await closed_loop(tg, proc, users, warmup, seconds, 4_000_000)
        finally:
            await stop(proc)


async def run_gembot(
    workdir: Path, gemini_url: str, users: int, warmup: float, seconds: float
) -> dict[str, Any]:
    async with BenchTelegram() as tg:
        proc = await start_gembot(workdir / "gembot-throughput", gemini_url, tg.base_url)
        try:
            return await closed_loop(tg, proc, users, warmup, seconds, 5_000_000)
        finally:
            await stop(proc)

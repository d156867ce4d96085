"""Concurrency: N users each send one message at once; makespan and the time gembot adds per message.

For each N the bare echo bot (benchmarks/echo_bot.py) answers the same burst first, on a fresh emulator:
its makespan gives the floor throughput (N / makespan) and the goal
``gembot makespan <= 1.2 x (Gemini latency + N / floor throughput)``.

Per-message overhead = (the user's first sendMessage at the emulator) - (the update queued at the
emulator, i.e. available to getUpdates) - (the emulated Gemini latency).
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
    summary_ms,
    wait_until,
)

WARMUP_USERS = 5


async def burst(
    tg: BenchTelegram, proc: Process, n: int, latency: float, first_id: int, within: float
) -> dict[str, Any]:
    """Warm ``proc`` up, then have ``n`` new users write at once; makespan, latencies, CPU and calls."""
    # Warm-up: the first answers pay for lazy imports, connection set-up and SQLite's first pages.
    warm = Users(tg, first_id, WARMUP_USERS)
    for i in range(WARMUP_USERS):
        warm.send(i, f"warm-up {i}")
    if not await wait_until(lambda: all(c["id"] in tg.first_answer for c in warm.chats), 30 + latency):
        raise RuntimeError(f"{proc.name}: warm-up not answered:\n{proc.log_tail()}")

    users = Users(tg, first_id + 1000, n)
    calls0 = Counter(tg.method_counts)
    cpu0 = cpu_seconds(proc.pid)
    sent: dict[int, float] = {}
    started = time.monotonic()
    for i in range(n):
        sent[users.chats[i]["id"]] = users.send(i, f"question {i} about the weather")
    queued = time.monotonic() - started
    done = await wait_until(lambda: all(c in tg.first_answer for c in sent), within)
    cpu = cpu_seconds(proc.pid) - cpu0
    answered = {c: tg.first_answer[c] for c in sent if c in tg.first_answer}
    burst_calls = Counter(tg.method_counts)
    burst_calls.subtract(calls0)
    if not done:
        print(f"    ! {proc.name}: {n - len(answered)} of {n} unanswered within {within:.0f} s")
    makespan = max(answered.values()) - started if answered else float("nan")
    latencies = [answered[c] - sent[c] for c in answered]
    return {
        "n": n,
        "answered": len(answered),
        "makespan_s": makespan,
        "queue_s": queued,
        "latency_ms": summary_ms(latencies),
        "overhead_ms": summary_ms([x - latency for x in latencies]),
        "cpu_s": cpu,
        "cpu_ms_per_message": cpu / max(len(answered), 1) * 1000,
        "calls": dict(tg.method_counts),
        "calls_per_answer": calls_per_answer(burst_calls, len(answered)),
    }


async def run_echo(workdir: Path, n: int) -> dict[str, Any]:
    """The floor: the echo bot answering a burst of ``n`` messages."""
    async with BenchTelegram() as tg:
        proc = await start_echo(workdir / f"echo-{n}", tg.base_url)
        try:
            result = await burst(tg, proc, n, 0.0, 2_000_000, within=60 + n / 10)
        finally:
            await stop(proc)
    result["throughput_per_s"] = n / result["makespan_s"]
    return result


async def run_gembot(
    workdir: Path, gemini_url: str, n: int, latency: float, *, mode: str = "polling"
) -> dict[str, Any]:
    """gembot answering a burst of ``n`` messages with ``latency`` s of emulated Gemini time."""
    async with BenchTelegram() as tg:
        extra: dict[str, Any] = {"mode": mode}
        if mode == "webhook":
            extra |= {"webhook_url": "http://127.0.0.1:{port}/telegram/webhook", "webhook_secret": "bench"}
        directory = workdir / f"gembot-{mode}-{n}"
        proc = await start_gembot(directory, gemini_url, tg.base_url, **extra)
        try:
            result = await burst(tg, proc, n, latency, 3_000_000, within=60 + latency + n / 10)
        finally:
            await stop(proc)
    result["mode"] = mode
    return result

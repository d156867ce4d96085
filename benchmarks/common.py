"""Shared pieces: the instrumented Telegram emulator, the processes under test, /proc readings, statistics.

All traffic stays on 127.0.0.1. Every wait is bounded in time; a benchmark that misses its deadline
reports what it has and fails loudly rather than hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.fakes.telegram import BOT_TOKEN, RecordedCall, TelegramEmulator

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
NO_OUTBOUND_LIMITS = {"global_per_second": 0, "per_chat_per_second": 0, "per_group_per_minute": 0}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchTelegram(TelegramEmulator):
    """The Telegram emulator without its unbounded call log, timestamping every sendMessage per chat.

    ``on_answer(chat_id, at)`` is called synchronously for every sendMessage (before it is answered), so a
    closed-loop driver can queue the user's next message at once.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("record", False)
        super().__init__(**kwargs)
        self.first_answer: dict[int, float] = {}
        self.answers = 0
        self.method_counts: Counter[str] = Counter()
        self.on_answer: Callable[[int, float], None] | None = None

    async def _dispatch(self, method: str, params: dict[str, Any], call: RecordedCall) -> Any:
        self.method_counts[method] += 1
        return await super()._dispatch(method, params, call)

    async def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        at = time.monotonic()
        result = await super()._m_sendmessage(params)
        chat_id = int(result["chat"]["id"])
        self.answers += 1
        self.first_answer.setdefault(chat_id, at)
        if self.on_answer is not None:
            self.on_answer(chat_id, at)
        return result


@dataclass
class Users:
    """``count`` private chats with ids from ``first``."""

    tg: TelegramEmulator
    first: int
    count: int

    def __post_init__(self) -> None:
        self.users = [self.tg.user(self.first + i, f"U{i}") for i in range(self.count)]
        self.chats = [self.tg.private_chat(u) for u in self.users]

    def send(self, i: int, text: str) -> float:
        """Queue a message from user ``i``; returns the monotonic time it became available."""
        self.tg.send(self.chats[i], self.users[i], text)
        return time.monotonic()


async def wait_until(predicate: Callable[[], bool], within: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``within`` seconds pass; returns whether it became true."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


# --------------------------------------------------------------------------------------------- processes


@dataclass
class Process:
    """A child process under test and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_", "TELEGRAM_", "SLACK_"))
    }
    env.update({"GEMINI_API_KEY": API_KEY, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "PYTHONUNBUFFERED": "1"})
    return env


async def _spawn(name: str, args: Sequence[str], log_path: Path, *, stdout_pipe: bool = False) -> Process:
    log_file = log_path.open("wb")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=_child_env(),
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
        )
    finally:
        log_file.close()
    return Process(name, process, log_path)


async def _first_line(proc: Process, within: float) -> str:
    assert proc.process.stdout is not None
    try:
        line = await asyncio.wait_for(proc.process.stdout.readline(), within)
    except TimeoutError:
        await stop(proc)
        raise RuntimeError(f"{proc.name} did not start within {within} s:\n{proc.log_tail()}") from None
    if not line:
        await stop(proc)
        raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
    return line.decode().strip()


async def start_gemini(workdir: Path, *, latency: float, chunk_delay: float = 0.0) -> tuple[Process, str]:
    """The Gemini emulator CLI in its own process (records nothing); returns it and its base URL."""
    proc = await _spawn(
        "gemini-emulator",
        [
            "-m",
            "tests.fakes.gemini",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--chunk-delay",
            str(chunk_delay),
            "--api-key",
            API_KEY,
        ],
        workdir / f"gemini-{time.monotonic_ns()}.log",
        stdout_pipe=True,
    )
    return proc, await _first_line(proc, 30)


def gembot_config(db: Path, gemini_url: str, tg_url: str, port: int, **telegram: Any) -> dict[str, Any]:
    """A ``gembot run`` config: defaults, except the emulators, no inbound or outbound rate limits.

    ``{port}`` in a string value of ``telegram`` becomes gembot's own port (the webhook URL).
    """
    return {
        "gemini": {"api_key": "${GEMINI_API_KEY}", "base_url": gemini_url},
        "storage": {"url": f"sqlite+aiosqlite:///{db}"},
        "rate_limits": {"per_user": "", "per_chat": ""},
        "telegram": {
            "enabled": True,
            "token": "${TELEGRAM_BOT_TOKEN}",
            "base_url": tg_url,
            "rate_limit": dict(NO_OUTBOUND_LIMITS),
            **{k: v.format(port=port) if isinstance(v, str) else v for k, v in telegram.items()},
        },
        "slack": {"enabled": False},
        "server": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "INFO", "format": "json"},
    }


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def migrate(directory: Path) -> None:
    """``python -m bot migrate`` on the config in ``directory``."""
    proc = await _spawn(
        "gembot migrate",
        ["-m", "bot", "migrate", "--config", str(directory / "config.yaml")],
        directory / "m.log",
    )
    status = await asyncio.wait_for(proc.process.wait(), 60)
    if status != 0:
        raise RuntimeError(f"gembot migrate failed:\n{proc.log_tail()}")


async def start_gembot(
    directory: Path, gemini_url: str, tg_url: str, *, db: Path | None = None, **telegram: Any
) -> Process:
    """``python -m bot run`` with a fresh config in ``directory``; returns once /readyz answers 200."""
    port = free_port()
    config = gembot_config(db or directory / "gembot.db", gemini_url, tg_url, port, **telegram)
    path = write_config(directory, config)
    proc = await _spawn("gembot run", ["-m", "bot", "run", "--config", str(path)], directory / "gembot.log")
    proc.port = port
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.process.returncode is not None:
                raise RuntimeError(f"gembot exited at start:\n{proc.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return proc
            if time.monotonic() > deadline:
                await stop(proc)
                raise RuntimeError(f"gembot was not ready within 60 s:\n{proc.log_tail()}")
            await asyncio.sleep(0.1)


async def start_echo(directory: Path, tg_url: str) -> Process:
    """The bare python-telegram-bot echo bot (benchmarks/echo_bot.py), polling; returns once it polls."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the measurement
    proc = await _spawn(
        "echo bot",
        ["-m", "benchmarks.echo_bot", "--base-url", tg_url],
        directory / "echo.log",
        stdout_pipe=True,
    )
    line = await _first_line(proc, 60)
    if line != "ready":
        await stop(proc)
        raise RuntimeError(f"echo bot said {line!r}:\n{proc.log_tail()}")
    return proc


async def stop(proc: Process, within: float = 30) -> int | None:
    """SIGTERM, then SIGKILL after ``within`` s; returns the exit status."""
    if proc.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.process.wait(), within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.process.kill()
            await proc.process.wait()
    return proc.process.returncode


# ------------------------------------------------------------------------------------------------ /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    """User + system CPU time from a /proc stat file (a process's, or one thread's under task/)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def load_average() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------- statistics

UPDATE_FETCH = "getupdates"
"""The one method that does not answer anyone (long polls, shared by every chat); counted apart."""


def calls_per_answer(calls: Counter[str], answers: int) -> dict[str, float]:
    """Bot API calls per answered message: ``total`` (without getUpdates), ``getupdates`` and each method."""
    per = {method: count / max(answers, 1) for method, count in sorted(calls.items()) if count > 0}
    per["total"] = sum(v for k, v in per.items() if k != UPDATE_FETCH)
    per.setdefault(UPDATE_FETCH, 0.0)
    return per


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of seconds, in milliseconds."""
    return {
        "p50": percentile(values, 50) * 1000,
        "p90": percentile(values, 90) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": (max(values) if values else math.nan) * 1000,
    }

"""The reliability suite's harness: sizes, a faulty Gemini, ``gembot run`` as a process, answer accounting.

Sizes: the CI size runs by default (the whole directory well under 90 s on 2 cores);
``GEMBOT_RELIABILITY_SCALE=full`` runs the full sizes (2,000 soak messages from 200 users, larger
crash loads, ten times the hypothesis examples). ``GEMBOT_RELIABILITY_SEED`` changes the fault seed
(default 9). ``GEMBOT_RELIABILITY_REPORT=path`` appends each run's figures there as JSON lines; the
figures are printed too (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from hypothesis import HealthCheck, settings

from tests.conftest import API_KEY, base_config
from tests.fakes.gemini import (
    Behaviour,
    CutStream,
    ErrorReply,
    GeminiEmulator,
    Hang,
    MidStreamError,
)
from tests.fakes.slack import BOT_TOKEN as SLACK_BOT_TOKEN
from tests.fakes.slack import SIGNING_SECRET, Message, SlackEmulator
from tests.fakes.telegram import BOT_TOKEN as TELEGRAM_BOT_TOKEN
from tests.fakes.telegram import BotMessage, TelegramEmulator

SCALE = os.environ.get("GEMBOT_RELIABILITY_SCALE", "ci").strip().lower() or "ci"
SEED = int(os.environ.get("GEMBOT_RELIABILITY_SEED", "9"))


@dataclass(frozen=True)
class Size:
    """How big each part of the suite runs."""

    soak_messages: int
    soak_users: int
    crash_messages: int
    crash_users: int
    fuzz_examples: int
    soak_timeout: float


SIZES = {
    "ci": Size(
        soak_messages=300,
        soak_users=60,
        crash_messages=90,
        crash_users=30,
        fuzz_examples=60,
        soak_timeout=60,
    ),
    "full": Size(
        soak_messages=2000,
        soak_users=200,
        crash_messages=400,
        crash_users=100,
        fuzz_examples=600,
        soak_timeout=300,
    ),
}
if SCALE not in SIZES:
    raise RuntimeError(f"GEMBOT_RELIABILITY_SCALE must be one of {sorted(SIZES)}, not {SCALE!r}")
SIZE = SIZES[SCALE]


def fuzz_settings(factor: float = 1.0) -> settings:
    """Hypothesis settings for one fuzz test: modest in CI, ten times more under the full scale.

    Used as a decorator per test (not a loaded profile) so the rest of the test suite is unaffected.
    """
    return settings(
        max_examples=max(10, int(SIZE.fuzz_examples * factor)),
        deadline=None,
        derandomize=SCALE == "ci",  # CI runs are repeatable; the full run explores new examples
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


def report(name: str, figures: dict[str, Any]) -> None:
    """Print one test's figures (and append them to ``GEMBOT_RELIABILITY_REPORT`` when set)."""
    line = json.dumps({"test": name, "scale": SCALE, "seed": SEED, **figures}, sort_keys=True)
    print(f"\nRELIABILITY {line}")
    target = os.environ.get("GEMBOT_RELIABILITY_REPORT")
    if target:
        with Path(target).open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")


# ------------------------------------------------------------------------------------------- Gemini


FAULT_KINDS = ("429", "500", "503", "timeout", "cut_stream", "cut_after_text", "mid_stream_error")


class FaultyGemini(GeminiEmulator):
    """The Gemini emulator whose default behaviour is a seeded random mix: mostly echoes, some faults.

    ``fault_rate`` of the generate requests that no script claims get one of :data:`FAULT_KINDS`; the
    rest echo the user's text. ``served`` counts what was served, by kind ("ok" for echoes).
    """

    def __init__(self, *, seed: int, fault_rate: float, timeout_s: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.timeout_s = timeout_s
        self.served: Counter[str] = Counter()

    def _fault(self, kind: str) -> Behaviour:
        if kind == "429":
            return ErrorReply.rate_limited(retry_delay=self.rng.choice(["0.2s", "1s", None]))
        if kind == "500":
            return ErrorReply.server_error(500)
        if kind == "503":
            return ErrorReply.overloaded()
        if kind == "timeout":
            return Hang(seconds=self.timeout_s)  # longer than the bot's read timeout
        if kind == "cut_stream":
            return CutStream(abrupt=self.rng.random() < 0.5)  # nothing shown yet: retried
        if kind == "cut_after_text":
            return CutStream(chunks=["a partial answer "], abrupt=self.rng.random() < 0.5)
        return MidStreamError(chunks=["a partial answer "], error_status=503)

    def _next(self, model: str) -> Behaviour:
        for key in (model, None):
            queue = self._queues.get(key)
            if queue:
                self.served["scripted"] += 1
                return queue.popleft()
        if self.rng.random() < self.fault_rate:
            kind = self.rng.choice(FAULT_KINDS)
            self.served[kind] += 1
            return self._fault(kind)
        self.served["ok"] += 1
        return self.default

    @property
    def faults_served(self) -> int:
        return sum(n for kind, n in self.served.items() if kind in FAULT_KINDS)

    @property
    def generate_requests(self) -> int:
        return sum(1 for r in self.requests if r.action in ("generateContent", "streamGenerateContent"))


# ------------------------------------------------------------------------------------ gembot process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_config(
    directory: Path,
    gemini: GeminiEmulator,
    *,
    tg: TelegramEmulator | None = None,
    slack: SlackEmulator | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """A config for ``gembot run`` on the emulators: fast retries and timeouts, no local rate limits."""
    config = base_config(directory / "data" / "gembot.db", gemini.base_url)
    config["gemini"].update(
        {
            "api_key": "${GEMINI_API_KEY}",
            "timeout": "5s",
            "connect_timeout": "1s",
            "read_timeout": "500ms",
            "retry": {
                "max_attempts": 4,
                "initial_backoff": "20ms",
                "max_backoff": "200ms",
                "max_wait": "2s",
                "deadline": "8s",
                "breaker_threshold": 5,
                "breaker_cooldown": "500ms",
            },
        }
    )
    if tg is not None:
        config["telegram"] = {
            "enabled": True,
            "token": "${TELEGRAM_BOT_TOKEN}",
            "base_url": tg.base_url,
            "stream_interval": "200ms",
            # The emulator is not Telegram: its 429s are injected, the local limits would only slow down.
            "rate_limit": {"global_per_second": 0, "per_chat_per_second": 0, "per_group_per_minute": 0},
        }
    if slack is not None:
        config["slack"] = slack.http_mode_config()
    config["server"] = {"host": "127.0.0.1", "port": port or free_port()}
    config["logging"] = {"level": "WARNING", "format": "json"}
    return config


@dataclass
class Gembot:
    """One ``python -m bot run`` process (its log appended to one file across restarts)."""

    directory: Path
    config: dict[str, Any]
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config['server']['port']}"

    @property
    def db_path(self) -> Path:
        return self.directory / "data" / "gembot.db"

    @property
    def log_path(self) -> Path:
        return self.directory / "gembot.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def start(self, *, within: float = 30.0) -> None:
        """Start the process and wait until /readyz answers 200."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "config.yaml"
        path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GEMINI_", "GEMBOT_", "TELEGRAM_", "SLACK_"))
        }
        env.update(
            {
                "GEMINI_API_KEY": API_KEY,
                "TELEGRAM_BOT_TOKEN": TELEGRAM_BOT_TOKEN,
                "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            }
        )
        with self.log_path.open("ab") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(path), stdout=sink, stderr=sink, env=env
            )
        self.starts += 1
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process.returncode is None, self.log()
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    self.process.kill()
                    await self.process.wait()
                    raise AssertionError("gembot did not become ready:\n" + self.log())
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a power cut or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, *, within: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise


# --------------------------------------------------------------------------------- answer accounting


TAG = re.compile(r"q-(?:tg|sl)-\d{4}-\d{3}")
"""Any marker made by :func:`tag`."""


def tag(platform: str, user: int, n: int) -> str:
    """A fixed-width marker no other marker contains, echoed back in every Gemini answer."""
    return f"q-{platform}-{user:04d}-{n:03d}"


@dataclass
class Sent:
    """One user message the test sent, and where its answer must appear."""

    tag: str
    conversation: tuple[str, Any, Any]  # ("telegram", chat_id, None) or ("slack", channel, thread_ts)
    text: str
    message_id: int | None = None  # Telegram
    ts: str | None = None  # Slack


@dataclass
class Tally:
    """The answers of every conversation, attributed to the messages sent there."""

    answers: dict[str, int] = field(default_factory=dict)  # tag -> answers attributed
    replies: dict[str, str] = field(default_factory=dict)  # tag -> the (first) answer's text
    out_of_order: list[str] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)

    @property
    def unanswered(self) -> list[str]:
        return sorted(t for t, n in self.answers.items() if n == 0)

    @property
    def duplicated(self) -> list[str]:
        return sorted(t for t, n in self.answers.items() if n > 1)


def conversation_answers(
    tg: TelegramEmulator | None, slack: SlackEmulator | None, conversation: tuple[str, Any, Any]
) -> list[BotMessage] | list[Message]:
    platform, where, thread = conversation
    if platform == "telegram":
        assert tg is not None
        return tg.bot_messages(where)
    assert slack is not None
    return slack.thread(where, thread)


def answer_text(message: BotMessage | Message) -> str:
    return message.text


def finished(message: BotMessage | Message) -> bool:
    if isinstance(message, Message):
        return not message.streaming and message.text != "…"
    return True


def tally(
    sent: list[Sent],
    tg: TelegramEmulator | None,
    slack: SlackEmulator | None,
    *,
    positional: bool = True,
    listed: Mapping[str, str] | None = None,
) -> Tally:
    """Attribute every bot message to a sent message.

    An answer belongs to a message when it carries the message's tag (Gemini echoes it), or quotes it
    (Telegram ``reply_to``; on Slack, sits in a thread under it), or is in ``listed`` (bot message id or
    ts -> tag), or, with ``positional``, by its position among the conversation's answers
    (notices carry no tag; answers within a conversation come in order, which the tags check).
    """
    by_tag = {s.tag: s for s in sent}
    result = Tally(answers={s.tag: 0 for s in sent})
    by_conversation: dict[tuple[str, Any, Any], list[Sent]] = {}
    for s in sent:
        by_conversation.setdefault(s.conversation, []).append(s)
    for conversation, messages in by_conversation.items():
        answers = conversation_answers(tg, slack, conversation)
        by_id = {s.message_id: s for s in messages if s.message_id is not None}
        for position, answer in enumerate(answers):
            text = answer_text(answer)
            owners = [s for s in messages if s.tag in text]
            if not owners and isinstance(answer, BotMessage) and answer.reply_to in by_id:
                owners = [by_id[answer.reply_to]]
            if not owners and listed is not None:
                owner_tag = listed.get(answer.ts if isinstance(answer, Message) else str(answer.message_id))
                owners = [by_tag[owner_tag]] if owner_tag in by_tag else []
            if owners:
                owner = owners[0]
                if positional and position < len(messages) and messages[position] is not owner:
                    result.out_of_order.append(f"{owner.tag} shown at position {position}")
            elif positional and position < len(messages):
                owner = messages[position]
            else:
                result.unattributed.append(f"{conversation}: {text[:80]!r}")
                continue
            result.answers[owner.tag] += 1
            result.replies.setdefault(owner.tag, text)
        if slack is not None and conversation[0] == "slack" and conversation[2] is None:
            # A top-level Slack message can also be answered in a thread under it (the follow-up after a
            # crash does that, so the notice sits on the message it is about).
            for s in messages:
                for answer in slack.thread(conversation[1], s.ts) if s.ts else []:
                    if finished(answer):
                        result.answers[s.tag] += 1
                        result.replies.setdefault(s.tag, answer.text)
    return result


async def wait_until(
    predicate: Callable[[], bool],
    *,
    within: float,
    tg: TelegramEmulator | None = None,
    slack: SlackEmulator | None = None,
) -> bool:
    """Poll ``predicate`` until it holds or ``within`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


# ------------------------------------------------------------------------------------------ database


def db_rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows from the bot's SQLite database (read-only; safe while the bot runs, WAL mode)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()

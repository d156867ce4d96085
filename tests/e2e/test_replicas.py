"""Two ``gembot run`` replicas on one PostgreSQL database and one Redis, behind one URL.

Telegram (webhook mode) and Slack (http mode) are both enabled in each replica. A small load balancer in
the test spreads requests round-robin over the replicas, fails over when a replica's port is closed, and
passes every other answer (a 503 too) back to the platform emulator, which delivers again, as Telegram
and Slack do. The Telegram emulator delivers its queue through the load balancer; Slack events are sent
through it, or straight to one replica where a test needs to choose.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from tests.conftest import API_KEY, base_config
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.slack import (
    BOT_TOKEN as SLACK_TOKEN,
)
from tests.fakes.slack import (
    SIGNING_SECRET,
    EventSender,
    SlackEmulator,
    event_callback,
    message_event,
)
from tests.fakes.telegram import BOT_TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram import TelegramEmulator
from tests.services import REDIS_URL, postgres_schema, postgres_unreachable, redis_unreachable, require

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.asyncio(loop_scope="module")]

WEBHOOK_SECRET = "replicas-Webhook_secret"
PER_USER = 8  # rate_limits.per_user per minute, shared through Redis
BUDGET = 5000  # budgets.tokens_per_user_per_day, counted in the shared database (other tests stay far below)
_ids = itertools.count(70_000)
_dms = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_dm() -> str:
    return f"DREPL{next(_dms):04d}"


@dataclass
class Replica:
    name: str
    process: asyncio.subprocess.Process
    url: str
    log: Path


@dataclass
class Balancer:
    """Round-robin over the replicas; a closed port fails over to the next one, other answers pass."""

    backends: list[str]
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (path, backend, status; 0 = refused)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        start = next(self._turn)
        for i in range(len(self.backends)):
            backend = self.backends[(start + i) % len(self.backends)]
            try:
                async with self._session.post(
                    f"{backend}{request.path}", data=body, headers=headers
                ) as response:
                    self.seen.append((request.path, backend, response.status))
                    return web.Response(status=response.status, body=await response.read())
            except aiohttp.ClientConnectionError:
                self.seen.append((request.path, backend, 0))
        return web.Response(status=502, text="no replica answered\n")


@dataclass
class World:
    gemini: GeminiEmulator
    slack: SlackEmulator
    tg: TelegramEmulator
    balancer: Balancer
    replicas: list[Replica]
    senders: list[EventSender]  # straight to replica 0 and 1
    via_balancer: EventSender


async def start_replica(name: str, tmp: Path, config: dict[str, Any]) -> Replica:
    """Start ``python -m bot run`` with ``config``; ready once /readyz says so."""
    directory = tmp / name
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = directory / "gembot.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_", "TELEGRAM_", "SLACK_"))
    }
    env.update(
        {
            "GEMINI_API_KEY": API_KEY,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
    )
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(path), stdout=sink, stderr=sink, env=env
        )
    return Replica(name, process, f"http://127.0.0.1:{config['server']['port']}", log)


async def wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + 40
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert replica.process.returncode is None, replica.log.read_text()
            try:
                async with session.get(f"{replica.url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{replica.name} did not become ready:\n" + replica.log.read_text())


async def sigterm_and_wait(replica: Replica) -> int:
    """SIGTERM (once) unless it has exited; returns the exit status."""
    if replica.process.returncode is None:
        replica.process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(replica.process.wait(), 30)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    require(await asyncio.to_thread(postgres_unreachable))
    require(await asyncio.to_thread(redis_unreachable))
    tmp = tmp_path_factory.mktemp("replicas")
    async with (
        postgres_schema() as pg_url,
        GeminiEmulator(api_key=API_KEY) as gemini,
        SlackEmulator() as slack,
        TelegramEmulator() as tg,
    ):
        balancer = Balancer(backends=[])
        await balancer.start()
        prefix = f"gembot-e2e-{uuid.uuid4().hex[:8]}"
        replicas: list[Replica] = []
        try:
            for name in ("a", "b"):
                config = base_config(tmp / "unused.db", gemini.base_url)
                config["gemini"]["api_key"] = "${GEMINI_API_KEY}"
                # Few lock connections: the PostgreSQL server is shared with other test runs.
                config["storage"] = {"url": pg_url, "lock_connections": 4}
                config["rate_limits"] = {
                    "storage": REDIS_URL,
                    "key_prefix": prefix,
                    "per_user": f"{PER_USER}/minute",
                    "per_chat": "",
                }
                config["telegram"] = {
                    "enabled": True,
                    "token": "${TELEGRAM_BOT_TOKEN}",
                    "base_url": tg.base_url,
                    "mode": "webhook",
                    "webhook_url": f"{balancer.url}/telegram/webhook",
                    "webhook_secret": WEBHOOK_SECRET,
                    "stream_interval": "200ms",
                    # The emulator is not Telegram: local pacing (1 message/s per chat) would only slow down.
                    "rate_limit": {
                        "global_per_second": 0,
                        "per_chat_per_second": 0,
                        "per_group_per_minute": 0,
                    },
                }
                config["slack"] = slack.http_mode_config()
                config["budgets"] = {"tokens_per_user_per_day": BUDGET}
                config["server"] = {"host": "127.0.0.1", "port": free_port(), "shutdown_grace": "15s"}
                config["logging"] = {"level": "INFO", "format": "json"}
                replicas.append(await start_replica(name, tmp, config))
            await asyncio.gather(*(wait_ready(r) for r in replicas))
            balancer.backends[:] = [r.url for r in replicas]
            async with (
                EventSender(f"{replicas[0].url}/slack/events") as to_a,
                EventSender(f"{replicas[1].url}/slack/events") as to_b,
                EventSender(f"{balancer.url}/slack/events") as via_balancer,
            ):
                yield World(gemini, slack, tg, balancer, replicas, [to_a, to_b], via_balancer)
        finally:
            # Every replica is stopped before anything is asserted: a failed check must not leave one
            # running (holding database connections for the rest of the suite).
            statuses = await asyncio.gather(
                *(sigterm_and_wait(replica) for replica in replicas), return_exceptions=True
            )
            for replica in replicas:
                if replica.process.returncode is None:
                    replica.process.kill()
                    await replica.process.wait()
            for replica, status in zip(replicas, statuses, strict=True):
                text = replica.log.read_text(encoding="utf-8", errors="replace")
                assert status == 0, text
                assert "Traceback" not in text, text
                for secret in (TELEGRAM_TOKEN, SLACK_TOKEN, SIGNING_SECRET, API_KEY):
                    assert secret not in text
            await balancer.stop()


@pytest.fixture(autouse=True)
def _fresh(world: World) -> None:
    world.gemini.reset()
    world.gemini.latency = 0.0


async def slack_answers(world: World, dm: str, count: int, within: float = 20.0) -> list[str]:
    """Wait for ``count`` finished bot messages in a DM; returns their texts."""

    def done() -> bool:
        messages = world.slack.thread(dm, None)
        return len(messages) >= count and not any(m.streaming or m.text == "…" for m in messages)

    await world.slack.wait_for(done, timeout=within)
    return world.slack.texts(dm, None)


async def deliver(sender: EventSender, body: dict[str, Any], attempts: int = 20) -> int:
    """POST a Slack event as Slack does: a non-2xx answer is delivered again (here at once, up to 20x)."""
    payload = json.dumps(body).encode()
    for attempt in range(attempts):
        status, _ = await sender.post(payload, "application/json", retry_num=attempt or None)
        if status == 200:
            return attempt
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {body['event_id']} refused {attempts} times")


async def wait_gemini(world: World, count: int) -> None:
    """Wait until Gemini has received ``count`` requests since the test began."""
    deadline = time.monotonic() + 15
    while True:
        if len(world.gemini.requests) >= count:
            return
        assert time.monotonic() < deadline, f"Gemini got {len(world.gemini.requests)} of {count} requests"
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------------------------------ tests


async def test_the_same_slack_event_to_both_replicas_gets_one_reply(world: World) -> None:
    world.gemini.latency = 0.2
    dms = [new_dm() for _ in range(5)]
    for dm in dms:
        body = event_callback(message_event(f"only once in {dm}", channel=dm, user=f"U{dm}"))
        statuses = await asyncio.gather(
            *(s.post(json.dumps(body).encode(), "application/json") for s in world.senders)
        )
        assert [status for status, _ in statuses] == [200, 200]
    for dm in dms:
        await deliver(world.senders[1], event_callback(message_event("sentinel", channel=dm, user=f"U{dm}")))
    for dm in dms:
        assert await slack_answers(world, dm, 2) == [f"echo: only once in {dm}", "echo: sentinel"]
    assert len(world.gemini.requests) == 2 * len(dms)


async def test_one_telegram_chat_split_across_replicas_is_answered_in_order(world: World) -> None:
    tg = world.tg
    world.gemini.latency = 0.3
    user = tg.user(next(_ids), "Ann")
    chat = tg.private_chat(user)
    seen_before = len(world.balancer.seen)
    texts = [f"t{i}" for i in range(6)]
    for i, text in enumerate(texts):
        # Delivered through the balancer: a, b, a, b... Each arrives while the one before is being
        # answered by the other replica (Gemini has it), so it must wait for that replica's lock.
        tg.send(chat, user, text)
        await wait_gemini(world, i + 1)
    await tg.wait_for(lambda: len(tg.texts(chat["id"])) >= len(texts), within=30)
    assert tg.texts(chat["id"]) == [f"echo: {t}" for t in texts]
    backends = {
        backend for path, backend, _ in world.balancer.seen[seen_before:] if path == "/telegram/webhook"
    }
    assert backends == {r.url for r in world.replicas}  # both replicas took part
    # Each request carried every earlier exchange of the chat, in order.
    requests = [r.contents() for r in world.gemini.requests]
    assert [c[-1][1] for c in requests] == texts
    for i, contents in enumerate(requests):
        history = [item for t in texts[:i] for item in (("user", t), ("model", f"echo: {t}"))]
        assert contents == [*history, ("user", texts[i])]


async def test_one_slack_dm_split_across_replicas_is_answered_in_order(world: World) -> None:
    world.gemini.latency = 0.3
    dm = new_dm()
    texts = [f"s{i}" for i in range(6)]
    for i, text in enumerate(texts):
        await deliver(world.senders[i % 2], event_callback(message_event(text, channel=dm, user=f"U{dm}")))
        await wait_gemini(world, i + 1)
    assert await slack_answers(world, dm, len(texts)) == [f"echo: {t}" for t in texts]
    assert [r.contents()[-1][1] for r in world.gemini.requests] == texts
    assert len(world.gemini.requests[-1].contents()) == 2 * len(texts) - 1


async def test_per_user_rate_limit_holds_across_replicas(world: World) -> None:
    user = "URATELIMIT"
    dms = [new_dm() for _ in range(PER_USER + 2)]
    for i, dm in enumerate(dms):
        await deliver(world.senders[i % 2], event_callback(message_event(f"r{i}", channel=dm, user=user)))
        await slack_answers(world, dm, 1)
    answers = [world.slack.texts(dm, None)[0] for dm in dms]
    assert answers[:PER_USER] == [f"echo: r{i}" for i in range(PER_USER)]
    assert all("You are sending messages too quickly" in a for a in answers[PER_USER:]), answers
    assert len(world.gemini.requests) == PER_USER


async def test_chats_alternating_between_replicas_are_answered_in_arrival_order(world: World) -> None:
    """Each chat's updates go to the replicas in turn (a, b, a...), the next one posted once the previous
    was acknowledged, as Telegram delivers a chat's webhook updates; the chats in parallel."""
    tg = world.tg
    world.gemini.latency = 0.1
    chats, per_chat = 60, 5
    users = [tg.user(next(_ids), "Order") for _ in range(chats)]
    webhooks = [f"{r.url}/telegram/webhook" for r in world.replicas]

    # Telegram's webhook connections (setWebhook max_connections): few, as the PostgreSQL server is shared.
    connections = asyncio.Semaphore(10)

    async def deliver_chat(n: int, user: dict[str, Any]) -> None:
        chat = tg.private_chat(user)
        for i in range(per_chat):
            update = tg.message_update(chat, user, f"c{n}m{i}")
            for _ in range(20):  # a refused update is delivered again (to the same replica, here)
                async with connections:
                    status = await tg.post_update(update, webhooks[(n + i) % 2])
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"update c{n}m{i} refused 20 times")

    started = time.monotonic()
    await asyncio.gather(*(deliver_chat(n, user) for n, user in enumerate(users)))
    await tg.wait_for(lambda: all(len(tg.texts(u["id"])) >= per_chat for u in users), within=60)
    elapsed = time.monotonic() - started
    wrong = {
        n: tg.texts(u["id"])
        for n, u in enumerate(users)
        if tg.texts(u["id"]) != [f"echo: c{n}m{i}" for i in range(per_chat)]
    }
    print(
        f"\n{chats} chats x {per_chat} messages over 2 replicas in {elapsed:.1f} s: {len(wrong)} out of order"
    )
    assert not wrong, f"{len(wrong)} of {chats} chats out of order, e.g. {next(iter(wrong.values()))}"


async def test_a_user_over_budget_is_refused_on_either_replica_without_a_gemini_call(world: World) -> None:
    dm, user = new_dm(), "UBUDGET"
    world.gemini.script(Reply("costly", usage={"promptTokenCount": BUDGET - 10, "candidatesTokenCount": 10}))
    await deliver(world.senders[0], event_callback(message_event("expensive", channel=dm, user=user)))
    await slack_answers(world, dm, 1)
    for i, sender in enumerate(world.senders):
        await deliver(sender, event_callback(message_event(f"more {i}", channel=dm, user=user)))
        refused = (await slack_answers(world, dm, 2 + i))[-1]
        assert "used up your daily Gemini budget" in refused and "UTC" in refused, refused
    assert len(world.gemini.requests) == 1


async def test_sigterm_to_one_replica_mid_load_loses_no_message(world: World) -> None:
    tg, slack = world.tg, world.slack
    world.gemini.latency = 0.8
    chats = []
    for _ in range(12):
        user = tg.user(next(_ids), "Load")
        chats.append((tg.private_chat(user), user))
    dms = [new_dm() for _ in range(12)]
    seen_before = len(world.balancer.seen)

    async def slack_message(dm: str, text: str) -> None:
        await deliver(world.via_balancer, event_callback(message_event(text, channel=dm, user=f"U{dm}")))

    # First wave: both replicas are answering when the SIGTERM arrives.
    for chat, user in chats:
        tg.send(chat, user, "wave 1")
    await asyncio.gather(*(slack_message(dm, "wave 1") for dm in dms))
    await asyncio.sleep(0.3)
    dying = world.replicas[0]
    dying.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.sleep(0.1)
    # Second wave while it drains; the balancer still sends it half of the traffic until its port closes.
    for chat, user in chats:
        tg.send(chat, user, "wave 2")
    await asyncio.gather(*(slack_message(dm, "wave 2") for dm in dms))
    status = await asyncio.wait_for(dying.process.wait(), 30)
    assert status == 0, dying.log.read_text()
    print(f"\nthe SIGTERMed replica exited 0 after {time.monotonic() - signalled:.2f} s")

    await tg.wait_for(lambda: all(len(tg.texts(chat["id"])) >= 2 for chat, _ in chats), within=30)
    for dm in dms:
        await slack_answers(world, dm, 2)
    await asyncio.sleep(0.5)  # a duplicate answer would show up now
    for chat, _ in chats:
        assert tg.texts(chat["id"]) == ["echo: wave 1", "echo: wave 2"]
    for dm in dms:
        assert slack.texts(dm, None) == ["echo: wave 1", "echo: wave 2"]
    refused = [
        s for path, backend, s in world.balancer.seen[seen_before:] if backend == dying.url and s != 200
    ]
    assert refused, "the dying replica refused nothing: the test did not hit the drain"
    assert set(refused) <= {503, 0}
    log = dying.log.read_text()
    assert "gembot.drained" in log and "shutdown_cut_short" not in log

"""The HTTP edge of ``gembot run`` (Slack http mode + Telegram webhook) against hostile clients.

One gembot process serves the module, started with RLIMIT_NOFILE 256 so that descriptor exhaustion would
show. Every hostile request carries :data:`MARKER`; no log line may ever contain it. The latency figures
(``HTTP-EDGE {...}`` lines with ``-s``) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio

from bot.http_edge import LINGER_S, connection_cap
from tests.conftest import API_KEY, base_config
from tests.e2e.gembot_process import Gembot, free_port, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.slack import (
    APP_ID,
    SIGNING_SECRET,
    EventSender,
    SlackEmulator,
    event_callback,
    message_event,
    signature,
)
from tests.fakes.slack import (
    BOT_TOKEN as SLACK_BOT_TOKEN,
)
from tests.fakes.telegram import BOT_TOKEN as TELEGRAM_BOT_TOKEN
from tests.fakes.telegram import TelegramEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MARKER = "HOSTILEMARKER7Q"
WEBHOOK_SECRET = "edge-Webhook_secret"
NOFILE = 256
READ_TIMEOUT_S = 2.0
KEEPALIVE_TIMEOUT_S = 2.0
SLOW_HEALTHZ_S = 0.1
# On a loaded machine (the load's client, the bot and other work share two cores) one probe in a hundred may
# wait for a core: p99 must stay under SLOW_HEALTHZ_S, and no probe may take a stall's time.
STALL_S = 1.0


@dataclass
class Edge:
    """The running gembot and its emulators."""

    bot: Gembot
    slack: SlackEmulator
    gemini: GeminiEmulator

    @property
    def url(self) -> str:
        return self.bot.url

    @property
    def port(self) -> int:
        return int(self.bot.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.bot.log.read_text(encoding="utf-8", errors="replace")


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Edge]:
    tmp = tmp_path_factory.mktemp("http-edge")
    async with (
        GeminiEmulator(api_key=API_KEY) as gemini,
        SlackEmulator() as slack,
        TelegramEmulator() as tg,
    ):
        port = free_port()
        config = base_config(tmp / "data" / "gembot.db", gemini.base_url)
        config["gemini"]["api_key"] = "${GEMINI_API_KEY}"
        config["server"] = {
            "host": "127.0.0.1",
            "port": port,
            "read_timeout": f"{READ_TIMEOUT_S:g}s",
            "keepalive_timeout": f"{KEEPALIVE_TIMEOUT_S:g}s",
        }
        config["logging"] = {"level": "INFO", "format": "json"}  # the default config's level
        config["slack"] = slack.http_mode_config(app_id=APP_ID)
        config["telegram"] = {
            "enabled": True,
            "token": "${TELEGRAM_BOT_TOKEN}",
            "base_url": tg.base_url,
            "mode": "webhook",
            "webhook_url": f"http://127.0.0.1:{port}/telegram/webhook",
            "webhook_secret": WEBHOOK_SECRET,
        }
        env = {
            "GEMINI_API_KEY": API_KEY,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_BOT_TOKEN,
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        }
        bot = await start_gembot(tmp, config, env, preexec_fn=_limit_descriptors)
        text = ""
        try:
            yield Edge(bot, slack, gemini)
        finally:
            text = await stop_gembot(bot)
        assert MARKER not in text
        for secret in (SLACK_BOT_TOKEN, SIGNING_SECRET, TELEGRAM_BOT_TOKEN, WEBHOOK_SECRET, API_KEY):
            assert secret not in text


# ------------------------------------------------------------------------------------------- helpers


async def raw(edge: Edge, request: bytes, *, within: float = 5.0) -> bytes:
    """Send ``request`` as is on a new connection; the whole answer (until the server closes or 1 s of
    silence after the first bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = b""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 1.0 if answer else within)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def header_of(answer: bytes, name: str) -> str | None:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def post(path: str, body: bytes, headers: dict[str, str] | None = None, extra: bytes = b"") -> bytes:
    """A raw HTTP/1.1 POST; ``extra`` is appended to the headers verbatim (any bytes)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n").encode() + extra + b"\r\n" + body


def slack_headers(body: bytes, *, secret: str = "wrong-secret", stamp: str | None = None) -> dict[str, str]:
    stamp = stamp if stamp is not None else str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(secret, stamp, body),
    }


async def healthz_latencies(edge: Edge, seconds: float) -> list[float]:
    """/healthz, each on a fresh connection, one after the other for ``seconds``; latencies in s."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            async with session.get(f"{edge.url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                assert response.status == 200
                await response.read()
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.005)
    return latencies


def figures(name: str, latencies: list[float], **extra: Any) -> dict[str, Any]:
    ordered = sorted(latencies)
    report = {
        "load": name,
        "probes": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        **extra,
    }
    print("HTTP-EDGE " + json.dumps(report))
    return report


# --------------------------------------------------------------------------------------------- tests


def new_lines(edge: Edge, since: int) -> list[str]:
    return edge.log_text()[since:].splitlines()


async def settle() -> None:
    await asyncio.sleep(0.3)  # the process writes its log line after answering


async def test_nothing_unauthenticated_is_logged_beyond_its_size_and_reason(edge: Edge) -> None:
    since = len(edge.log_text())
    bodies = {
        "json": json.dumps({"type": "event_callback", "event": {"text": MARKER}}).encode(),
        "long": (MARKER + "a" * 150_000 + "@").encode(),
        "form": urlencode({"command": "/gembot", "text": MARKER}).encode(),
        "actions": urlencode({"payload": json.dumps({"type": "block_actions", "x": MARKER})}).encode(),
    }
    requests = [post("/slack/events", body, slack_headers(body)) for body in bodies.values()]
    requests += [
        post("/slack/events", bodies["json"]),  # no signature at all
        post("/slack/events", bodies["json"], slack_headers(bodies["json"], stamp=f"12{MARKER}")),
        post("/slack/events", bodies["json"], {"X-Slack-Signature": f"v0={MARKER}"}),
        post("/telegram/webhook", bodies["json"], {"X-Telegram-Bot-Api-Secret-Token": MARKER}),
        post("/telegram/webhook", bodies["json"]),
        post(f"/{MARKER}", bodies["json"]),
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-{MARKER} broken header\r\n\r\n".encode(),
        f"GET /{MARKER}\x00 HTTP/1.1\r\n\r\n".encode(),
        f"{MARKER}\x01 / HTTP/1.1\r\n\r\n".encode(),
    ]
    answers = await asyncio.gather(*(raw(edge, request) for request in requests))
    statuses = [status_of(answer) for answer in answers]
    assert all(400 <= status < 500 for status in statuses), statuses
    await settle()
    lines = new_lines(edge, since)
    assert not [line for line in lines if MARKER in line]
    refused = [json.loads(line) for line in lines if '"slack.request_refused"' in line]
    assert {entry["reason"] for entry in refused} >= {"bad_signature", "missing_signature", "bad_timestamp"}
    assert {entry["bytes"] for entry in refused} >= {len(body) for body in bodies.values()}
    assert all(
        set(entry) <= {"event", "reason", "bytes", "level", "logger", "timestamp"} for entry in refused
    )


async def test_bad_input_is_refused_with_one_line_and_no_traceback(edge: Edge) -> None:
    deep = b'{"update_id": 1, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    signed_deep = b'{"type": "event_callback", "event": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    form_deep = b"payload=" + b"%5B" * 50_000
    cases = [
        (post("/slack/events", b"{not json", slack_headers(b"{not json")), 401),
        (post("/slack/events", b"%%%=&&", slack_headers(b"%%%=&&")), 401),
        (post("/slack/events", b"{}", slack_headers(b"{}", secret=SIGNING_SECRET, stamp="abc")), 401),
        (post("/slack/events", b"{}", slack_headers(b"{}", secret=SIGNING_SECRET, stamp="1e99")), 401),
        (post("/slack/events", b"{}", slack_headers(b"{}", secret=SIGNING_SECRET, stamp="9" * 40)), 401),
        (post("/slack/events", b"{}", slack_headers(b"{}", secret=SIGNING_SECRET, stamp="")), 401),
        (post("/slack/events", signed_deep, slack_headers(signed_deep, secret=SIGNING_SECRET)), 400),
        (post("/slack/events", b"{bad", slack_headers(b"{bad", secret=SIGNING_SECRET)), 400),
        (post("/slack/events", form_deep, slack_headers(form_deep, secret=SIGNING_SECRET)), 400),
        (post("/telegram/webhook", b"{}", extra=b"X-Telegram-Bot-Api-Secret-Token: \xff\xfe\x80\r\n"), 403),
        (post("/telegram/webhook", deep, {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}), 400),
    ]
    for request, expected in cases:
        since = len(edge.log_text())
        answer = await raw(edge, request)
        await settle()
        lines = new_lines(edge, since)
        assert status_of(answer) == expected, (request[:200], answer[:300])
        assert len(lines) == 1, (request[:200], lines)
        assert "Traceback" not in lines[0] and '"error"' not in lines[0], lines


async def test_server_header_names_no_software_version(edge: Edge) -> None:
    requests = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        post("/slack/events", b"{}"),
        post("/telegram/webhook", b"{}"),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    ]
    for request in requests:
        answer = await raw(edge, request)
        assert header_of(answer, "Server") == "gembot", answer[:300]
        assert b"aiohttp" not in answer.lower() and b"python/" not in answer.lower()


async def test_events_of_another_workspace_or_app_and_interactions_are_acknowledged_not_answered(
    edge: Edge,
) -> None:
    async with EventSender(f"{edge.url}/slack/events") as sender:
        dm = "DEDGE0001"
        foreign_team = event_callback(message_event("foreign team", channel=dm, user="U1"), team_id="TOTHER")
        foreign_app = {
            **event_callback(message_event("foreign app", channel=dm, user="U1")),
            "api_app_id": "AOTHER",
        }
        assert (await sender.event({}, envelope=foreign_team))[0] == 200
        assert (await sender.event({}, envelope=foreign_app))[0] == 200
        action = {
            "type": "block_actions",
            "team": {"id": "T0TEST", "domain": "emulated"},
            "user": {"id": "U1", "team_id": "T0TEST"},
            "api_app_id": APP_ID,
            "actions": [{"action_id": "a1", "block_id": "b1", "type": "button", "value": "v"}],
            "container": {"type": "message", "channel_id": dm},
            "channel": {"id": dm},
            "response_url": edge.slack.response_url("action"),
            "trigger_id": "1.2.3",
        }
        status, _ = await sender.post(
            urlencode({"payload": json.dumps(action)}).encode(), "application/x-www-form-urlencoded"
        )
        assert status == 200
        assert (await sender.event(message_event("sentinel", channel=dm, user="U1")))[0] == 200
        await edge.slack.wait_for(lambda: edge.slack.texts(dm, None) == ["echo: sentinel"])
        assert [r.contents()[-1][1] for r in edge.gemini.requests] == ["sentinel"]
    assert "Traceback" not in edge.log_text()


# Posts 1 MB bodies with a wrong signature, one after the other, for argv[2] seconds; prints how many were
# refused with 401. A process of its own, so that building the load does not slow the /healthz probe down.
FLOOD = """
import http.client, sys, threading, time
port, seconds, body = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].encode() + b"a" * 1_000_000 + b"@"
headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(int(time.time())),
           "X-Slack-Signature": "v0=" + "0" * 64}
refused = []
def flood():
    end = time.monotonic() + seconds
    connection = http.client.HTTPConnection("127.0.0.1", port)
    while time.monotonic() < end:
        connection.request("POST", "/slack/events", body, headers)
        response = connection.getresponse()
        response.read()
        refused.append(response.status == 401)
threads = [threading.Thread(target=flood)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(sum(refused), len(refused))
"""


async def test_healthz_stays_fast_while_1mb_unsigned_bodies_are_posted(edge: Edge) -> None:
    seconds = 3.0
    flood = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FLOOD,
        str(edge.port),
        str(seconds + 0.5),
        MARKER,
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.3)
    latencies = await healthz_latencies(edge, seconds)
    out, _ = await asyncio.wait_for(flood.communicate(), 30)
    refused, posted = map(int, out.split())
    report = figures("1 MB unsigned POSTs to /slack/events in a loop", latencies, posts=posted)
    assert refused == posted >= 20
    assert report["p99_ms"] < SLOW_HEALTHZ_S * 1000, report
    assert report["max_ms"] < STALL_S * 1000, report


async def count_descriptors(edge: Edge, into: list[int]) -> None:
    """Append the number of descriptors the bot has open, every 10 ms, until cancelled."""
    while True:
        into.append(len(os.listdir(f"/proc/{edge.bot.process.pid}/fd")))
        await asyncio.sleep(0.01)


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent until it closed the connection (a reset, for unread bytes, is a close too)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def test_healthz_stays_fast_while_300_half_open_connections_are_held(edge: Edge) -> None:
    since = len(edge.log_text())
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(300):
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        held.append((reader, writer))
    try:
        descriptors: list[int] = []
        sampling = asyncio.create_task(count_descriptors(edge, descriptors))
        latencies = await healthz_latencies(edge, READ_TIMEOUT_S - 0.5)  # while they are held
        sampling.cancel()
        report = figures("300 half-open connections held", latencies, nofile=NOFILE, fds=max(descriptors))
        assert max(descriptors) < NOFILE - connection_cap(NOFILE)  # room for everything else
        assert report["p99_ms"] < SLOW_HEALTHZ_S * 1000, report
        assert report["max_ms"] < STALL_S * 1000, report
        async with EventSender(f"{edge.url}/slack/events") as sender:
            dm = "DEDGE0002"
            assert (await sender.event(message_event("still there?", channel=dm, user="U2")))[0] == 200
        await edge.slack.wait_for(lambda: edge.slack.texts(dm, None) == ["echo: still there?"])
        # Every half-open connection is closed by the server once the read timeout is over.
        closed = await asyncio.wait_for(
            asyncio.gather(*(until_closed(reader) for reader, _ in held)), READ_TIMEOUT_S + 3
        )
        assert all(b"HTTP/1.1 200" not in answer for answer in closed)
    finally:
        for _, writer in held:
            writer.close()
    lines = new_lines(edge, since)
    assert not [line for line in lines if "Too many open files" in line or "out of system resource" in line]


async def test_slow_headers_slow_bodies_and_idle_connections_are_closed(edge: Edge) -> None:
    async def trickle(prefix: bytes, data: bytes) -> float:
        """Send ``prefix``, then ``data`` a byte every 100 ms; seconds until the server closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        start = time.monotonic()
        try:
            writer.write(prefix)
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    if not await asyncio.wait_for(reader.read(1024), 0.1):
                        break
                except TimeoutError:
                    continue
            return time.monotonic() - start
        except ConnectionError:
            return time.monotonic() - start
        finally:
            writer.close()

    head = b"POST /telegram/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n"
    slow_headers, slow_body = await asyncio.gather(
        trickle(head, b"X-Slow: " + b"a" * 100), trickle(head + b"\r\n", b"{" * 100)
    )
    assert slow_headers < READ_TIMEOUT_S + 1.0, slow_headers
    assert slow_body < READ_TIMEOUT_S + LINGER_S + 1.0, slow_body
    # An idle keep-alive connection is closed after the keep-alive timeout.
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    start = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), KEEPALIVE_TIMEOUT_S + 2)
    writer.close()
    assert status_of(answer) == 200
    assert KEEPALIVE_TIMEOUT_S - 0.5 < time.monotonic() - start < KEEPALIVE_TIMEOUT_S + 1.5

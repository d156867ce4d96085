"""Fuzz: Gemini responses, random, truncated and wrongly typed, against the error parser, the client and
the engine.

Promises: every outcome of a Gemini call is a result or a ``GeminiError`` (never another exception), and
every message still gets exactly one answer (a reply or a notice: no silence, no traceback).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bot.app import App
from bot.config import settings_from_mapping
from bot.domain import FinalAnswer, Notice
from bot.llm.errors import GeminiError, error_from_response
from bot.llm.gemini import GeminiClient, GeminiTimeouts
from bot.llm.types import ChatMessage, GenerationParams, LlmRequest, LlmResult
from tests.conftest import API_KEY, base_config, deep_merge
from tests.helpers import incoming
from tests.reliability.conftest import fuzz_settings

json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
junk = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def maybe_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, junk)


parts = st.lists(
    st.fixed_dictionaries({}, optional={"text": maybe_wrong(st.text(max_size=30)), "thought": st.booleans()}),
    max_size=3,
)
candidate = st.fixed_dictionaries(
    {},
    optional={
        "content": maybe_wrong(
            st.fixed_dictionaries({"parts": maybe_wrong(parts)}, optional={"role": st.text()})
        ),
        "finishReason": maybe_wrong(
            st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER", ""])
        ),
    },
)
usage = st.fixed_dictionaries(
    {}, optional={k: maybe_wrong(st.integers(0, 10**6)) for k in ("promptTokenCount", "candidatesTokenCount")}
)
error_obj = st.fixed_dictionaries(
    {},
    optional={
        "code": maybe_wrong(st.sampled_from([400, 403, 404, 429, 500, 503, 200, 0])),
        "message": maybe_wrong(st.text(max_size=40)),
        "status": maybe_wrong(st.sampled_from(["RESOURCE_EXHAUSTED", "UNAVAILABLE", ""])),
        "details": maybe_wrong(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "@type": st.sampled_from(
                            [
                                "type.googleapis.com/google.rpc.RetryInfo",
                                "type.googleapis.com/google.rpc.QuotaFailure",
                                "type.googleapis.com/google.rpc.ErrorInfo",
                            ]
                        )
                    },
                    optional={
                        "retryDelay": maybe_wrong(st.sampled_from(["37s", "1.5s", "-3s", "x", "1e999s"])),
                        "violations": junk,
                        "reason": st.sampled_from(["API_KEY_INVALID", "X"]),
                    },
                ),
                max_size=3,
            )
        ),
    },
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "candidates": maybe_wrong(st.lists(candidate, max_size=2)),
            "usageMetadata": maybe_wrong(usage),
            "promptFeedback": maybe_wrong(
                st.fixed_dictionaries({"blockReason": maybe_wrong(st.text(max_size=10))})
            ),
            "modelVersion": maybe_wrong(st.text(max_size=8)),
        },
    ),
    st.fixed_dictionaries({"error": maybe_wrong(error_obj)}),
    junk,
)


def encode(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


@dataclass(frozen=True)
class Spec:
    """One HTTP answer the fuzz server gives: status, content type, body, and whether to cut it."""

    status: int
    content_type: str
    body: bytes
    cut_at: int | None = None


bodies = st.one_of(
    payloads.map(encode),
    st.lists(payloads.map(lambda p: b"data: " + encode(p) + b"\r\n\r\n"), max_size=4).map(b"".join),
    st.lists(
        st.sampled_from([b"data: {", b"data: [DONE]\r\n\r\n", b": ping\n\n", b"event: x\n", b"\n\n"]),
        max_size=4,
    ).map(b"".join),
    st.binary(max_size=60),
)
specs = st.builds(
    Spec,
    status=st.sampled_from([200, 200, 200, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504, 302, 418]),
    content_type=st.sampled_from(["application/json", "text/event-stream", "text/html", "text/plain"]),
    body=bodies,
    cut_at=st.none() | st.integers(0, 200),
)


@fuzz_settings(3)
@given(st.integers(-1, 1000) | st.sampled_from([200, 400, 429, 500]), st.one_of(bodies, payloads, st.text()))
def test_error_parser_always_gives_a_gemini_error(status: int, body: Any) -> None:
    err = error_from_response(status, body)
    assert isinstance(err, GeminiError)
    str(err), repr(err)


# ----------------------------------------------------------------------------- client and engine


class FuzzServer:
    """Answers every request with ``spec`` (cut mid-body when ``cut_at`` is set)."""

    def __init__(self) -> None:
        self.spec = Spec(200, "application/json", b"{}")
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        spec = self.spec
        body = spec.body if spec.cut_at is None else spec.body[: spec.cut_at]
        response = web.StreamResponse(status=spec.status, headers={"Content-Type": spec.content_type})
        if spec.cut_at is not None:
            response.content_length = len(spec.body) + 1  # promise more than is sent, then hang up
        await response.prepare(request)
        await response.write(body)
        if spec.cut_at is not None:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response


@dataclass
class World:
    loop: asyncio.Runner
    server: FuzzServer
    client: GeminiClient
    app: App
    ids: Iterator[int]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with tempfile.TemporaryDirectory() as directory, asyncio.Runner() as runner:
        server = FuzzServer()
        runner.run(server.start())
        client = GeminiClient(
            api_key=API_KEY,
            base_url=server.base_url,
            model="gemini-2.5-flash",
            timeouts=GeminiTimeouts(connect=1, read=1, total=2),
        )
        config = deep_merge(
            base_config(Path(directory) / "gembot.db", server.base_url),
            {
                "gemini": {
                    "read_timeout": "1s",
                    "timeout": "2s",
                    "retry": {
                        "max_attempts": 2,
                        "initial_backoff": "1ms",
                        "max_backoff": "1ms",
                        "max_wait": "10ms",
                        "deadline": "3s",
                        "breaker_threshold": 0,
                    },
                }
            },
        )
        app = runner.run(App.create(settings_from_mapping(config, env={})))
        try:
            yield World(runner, server, client, app, itertools.count())
        finally:
            runner.run(app.aclose())
            runner.run(client.aclose())
            runner.run(server.stop())


REQUEST = LlmRequest(contents=(ChatMessage("user", "hi"),), generation=GenerationParams())


async def _call(world: World, stream: bool) -> object:
    try:
        if not stream:
            return await world.client.generate(REQUEST)
        return [chunk async for chunk in world.client.stream(REQUEST)]
    except GeminiError as exc:
        return exc


@fuzz_settings(2)
@given(specs, st.booleans())
def test_client_gives_a_result_or_a_gemini_error(world: World, spec: Spec, stream: bool) -> None:
    world.server.spec = spec
    outcome = world.loop.run(_call(world, stream))
    assert isinstance(outcome, LlmResult | list | GeminiError), outcome


@fuzz_settings(1)
@given(specs)
def test_every_message_gets_exactly_one_answer_whatever_gemini_sends(world: World, spec: Spec) -> None:
    world.server.spec = spec

    async def answer() -> list[object]:
        message = incoming(f"question {next(world.ids)}", chat=f"fuzz-{next(world.ids)}")
        return [event async for event in world.app.engine.handle(message)]

    events = world.loop.run(answer())
    ends = [e for e in events if isinstance(e, FinalAnswer | Notice)]
    assert len(ends) == 1 and events[-1] is ends[0], events
    assert "Traceback" not in (ends[0].text if isinstance(ends[0], Notice) else "")

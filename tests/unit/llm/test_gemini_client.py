"""GeminiClient against the Gemini emulator over real loopback HTTP, plus the error parser."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.llm.errors import (
    BadKeyError,
    BadRequestError,
    DeadlineExceededError,
    EmptyResponseError,
    GeminiConnectionError,
    GeminiError,
    GeminiTimeoutError,
    NotFoundError,
    PromptBlockedError,
    RateLimitedError,
    ResponseBlockedError,
    ResponseStoppedError,
    ServerError,
    StreamCutError,
    error_from_response,
    parse_proto_duration,
)
from bot.llm.gemini import GeminiClient, GeminiTimeouts
from bot.llm.notices import notice_key
from bot.llm.types import ChatMessage, GenerationParams, LlmChunk, LlmRequest, LlmResult, MediaPart, Usage
from tests.fakes.gemini import (
    CutStream,
    Disconnect,
    ErrorReply,
    GeminiEmulator,
    Hang,
    MidStreamError,
    PromptBlocked,
    Reply,
)

KEY = "AIzaSy-test-SECRET-0123456789"
MODEL = "gemini-2.5-flash"
FAST = GeminiTimeouts(connect=2.0, read=2.0, total=5.0)


def ask(*texts: str, system: str | None = None, **gen: Any) -> LlmRequest:
    """A request alternating user/model turns, ending with a user turn."""
    roles = ["user", "model"] * len(texts)
    contents = tuple(ChatMessage(role=r, text=t) for r, t in zip(roles, texts, strict=False))  # type: ignore[arg-type]
    return LlmRequest(contents=contents, system_instruction=system, generation=GenerationParams(**gen))


async def collect(stream: AsyncGenerator[LlmChunk, None]) -> list[LlmChunk]:
    async with aclosing(stream) as chunks:
        return [c async for c in chunks]


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiEmulator]:
    async with GeminiEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def client(gemini: GeminiEmulator) -> AsyncIterator[GeminiClient]:
    # The trailing slash is deliberate: it must be tolerated.
    async with GeminiClient(api_key=KEY, base_url=gemini.base_url + "/", model=MODEL, timeouts=FAST) as c:
        yield c


async def call(client: GeminiClient, stream: bool, request: LlmRequest | None = None) -> str:
    """Run one call either way; returns the full text."""
    request = request or ask("hi")
    if stream:
        return "".join(c.text for c in await collect(client.stream(request)))
    return (await client.generate(request)).text


# ------------------------------------------------------------------------------------------ request shape


async def test_request_shape(gemini: GeminiEmulator, client: GeminiClient) -> None:
    data = b"\x89PNG\r\n\x1a\n-bytes"
    image = MediaPart(mime_type="image/png", size=len(data), data=data)
    request = LlmRequest(
        contents=(
            ChatMessage(role="user", text="hello", attachments=(image,)),
            ChatMessage(role="model", text="hi there"),
            ChatMessage(role="user", text="weather in Oslo?"),
        ),
        system_instruction="You are terse.",
        generation=GenerationParams(temperature=0.7, max_output_tokens=512),
    )
    result = await client.generate(request)
    assert result.text == "echo: weather in Oslo?"

    rec = gemini.requests[0]
    assert rec.method == "POST"
    assert rec.path == f"/v1beta/models/{MODEL}:generateContent"
    assert rec.model == MODEL and rec.stream is False and rec.query == {}
    assert rec.headers["x-goog-api-key"] == KEY
    assert rec.headers["Content-Type"] == "application/json"
    assert KEY not in rec.path
    assert rec.body == {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "hello"},
                    {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image.data).decode()}},
                ],
            },
            {"role": "model", "parts": [{"text": "hi there"}]},
            {"role": "user", "parts": [{"text": "weather in Oslo?"}]},
        ],
        "generationConfig": {"temperature": 0.7, "maxOutputTokens": 512},
    }
    assert gemini.user_texts(0) == ["hello", "weather in Oslo?"]
    assert gemini.contents(0)[1] == ("model", "hi there")


async def test_request_shape_stream_thinking_and_no_config(
    gemini: GeminiEmulator, client: GeminiClient
) -> None:
    await collect(client.stream(ask("a", top_p=0.9, thinking_budget=0)))
    await client.generate(ask("b"))
    streamed, plain = gemini.requests
    assert streamed.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert streamed.query == {"alt": "sse"} and streamed.stream
    assert streamed.body["generationConfig"] == {"topP": 0.9, "thinkingConfig": {"thinkingBudget": 0}}
    assert "systemInstruction" not in plain.body and "generationConfig" not in plain.body


async def test_repeated_calls_to_one_target_each_carry_their_own_body_and_the_same_headers(
    gemini: GeminiEmulator, client: GeminiClient
) -> None:
    texts = ["short", "a much longer question " * 40, "mid-sized question"]
    for text in texts:  # the first builds the target's request in full, the others reuse its parts
        await collect(client.stream(ask(text)))
    await client.generate(ask("a plain question"))
    assert [gemini.user_texts(i)[-1] for i in range(4)] == [*texts, "a plain question"]
    assert all(rec.headers["x-goog-api-key"] == KEY for rec in gemini.requests)
    assert len({rec.headers["Content-Length"] for rec in gemini.requests}) == 4  # each its body's own
    assert [r.stream for r in gemini.requests] == [True, True, True, False]
    assert [r.query for r in gemini.requests] == [{"alt": "sse"}] * 3 + [{}]


async def test_per_call_model_and_base_url_override(gemini: GeminiEmulator, client: GeminiClient) -> None:
    async with GeminiEmulator(api_key=KEY) as other:
        await client.generate(ask("x"), model="gemini-2.5-pro", base_url=other.base_url)
        await client.generate(ask("y"), model="models/gemini-2.5-flash-lite")
    assert [r.model for r in other.requests] == ["gemini-2.5-pro"]
    assert [r.model for r in gemini.requests] == ["gemini-2.5-flash-lite"]


async def test_repr_hides_key(client: GeminiClient) -> None:
    assert KEY not in repr(client)


# ---------------------------------------------------------------------------------------------- replies


async def test_generate_reply_and_usage(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(
        Reply(
            "Hi!",
            usage={
                "promptTokenCount": 3,
                "candidatesTokenCount": 2,
                "thoughtsTokenCount": 17,
                "totalTokenCount": 22,
            },
        )
    )
    result = await client.generate(ask("hi"))
    assert result == LlmResult(
        text="Hi!",
        finish_reason="STOP",
        usage=Usage(prompt_tokens=3, output_tokens=2, thoughts_tokens=17, total_tokens=22),
        model_version=MODEL,
        response_id=result.response_id,
    )
    assert result.response_id


async def test_generate_skips_thought_parts_and_keeps_max_tokens(
    gemini: GeminiEmulator, client: GeminiClient
) -> None:
    gemini.script(
        Reply("partial answ", finish_reason="MAX_TOKENS", thoughts="let me think", show_thoughts=True)
    )
    result = await client.generate(ask("hi"))
    assert result.text == "partial answ"
    assert result.finish_reason == "MAX_TOKENS"
    assert result.usage.thoughts_tokens > 0
    assert result.usage.total_tokens == (
        result.usage.prompt_tokens + result.usage.output_tokens + result.usage.thoughts_tokens
    )


@pytest.mark.parametrize("separator", ["\r\n\r\n", "\n\n", "\r\r"])
async def test_stream_deltas_in_order(separator: str) -> None:
    pieces = ["Hel", "lo, ", "wörld ", "😀", "!"]
    async with GeminiEmulator(api_key=KEY, sse_separator=separator) as gemini:
        gemini.script(Reply(chunks=pieces, thoughts="hmm", show_thoughts=True))
        async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, timeouts=FAST) as client:
            chunks = await collect(client.stream(ask("hi")))
    assert [c.text for c in chunks] == pieces
    assert [c.finish_reason for c in chunks] == [None] * 4 + ["STOP"]
    outputs = [c.usage.output_tokens for c in chunks if c.usage]
    assert outputs == sorted(outputs) and len(outputs) == 5  # cumulative
    final = chunks[-1].usage
    assert (
        final is not None
        and final.total_tokens == final.prompt_tokens + final.output_tokens + final.thoughts_tokens
    )


@pytest.mark.parametrize("last_separator", ["", "\n", "\r\n"])
async def test_a_last_event_without_the_blank_line_after_it_is_still_read(last_separator: str) -> None:
    async with GeminiEmulator(api_key=KEY, sse_last_separator=last_separator) as gemini:
        gemini.script(Reply(chunks=["Hel", "lo"]))
        async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, timeouts=FAST) as client:
            chunks = await collect(client.stream(ask("hi")))
    assert [(c.text, c.finish_reason) for c in chunks] == [("Hel", None), ("lo", "STOP")]


async def test_connections_are_reused(gemini: GeminiEmulator, client: GeminiClient) -> None:
    for _ in range(3):
        await collect(client.stream(ask("x")))
        await client.generate(ask("y"))
    assert len({r.peer for r in gemini.requests}) == 1


async def test_stream_long_echo_concatenates(gemini: GeminiEmulator, client: GeminiClient) -> None:
    text = "word " * 40
    chunks = await collect(client.stream(ask(text)))
    assert len(chunks) > 3
    assert "".join(c.text for c in chunks) == "echo: " + text


# ----------------------------------------------------------------------------------------------- errors


def check_rate_limited(err: GeminiError) -> None:
    assert isinstance(err, RateLimitedError)
    assert err.retry_delay == pytest.approx(45.837906927)
    assert err.quota_ids == ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier",)
    assert not err.is_long_window


def check_bare_429(err: GeminiError) -> None:
    assert isinstance(err, RateLimitedError)
    assert err.retry_delay is None and err.quota_ids == () and not err.is_long_window
    assert err.message == "Resource has been exhausted (e.g. check quota)."


def check_daily(err: GeminiError) -> None:
    assert isinstance(err, RateLimitedError)
    assert err.is_long_window and err.retry_delay == 65205.0


def check_overloaded(err: GeminiError) -> None:
    assert type(err) is ServerError
    assert (err.http_status, err.status) == (503, "UNAVAILABLE")
    assert err.message == "The model is overloaded. Please try again later."


def check_too_large(err: GeminiError) -> None:
    assert isinstance(err, BadRequestError) and err.too_large


def check_plain_bad_request(err: GeminiError) -> None:
    assert isinstance(err, BadRequestError) and not err.too_large
    assert err.status == "INVALID_ARGUMENT"


def check_html(err: GeminiError) -> None:
    assert type(err) is ServerError and err.http_status == 502 and err.status is None
    assert "temporary error" in err.message and "<" not in err.message


ERROR_CASES: list[tuple[str, Any, type[GeminiError], int, Callable[[GeminiError], None] | None]] = [
    ("429", ErrorReply.rate_limited("45.837906927s"), RateLimitedError, 429, check_rate_limited),
    ("429-bare", ErrorReply.rate_limited(None), RateLimitedError, 429, check_bare_429),
    ("429-daily", ErrorReply.daily_quota(), RateLimitedError, 429, check_daily),
    ("500", ErrorReply.server_error(500), ServerError, 500, None),
    ("503", ErrorReply.overloaded(), ServerError, 503, check_overloaded),
    ("504", ErrorReply.server_error(504), ServerError, 504, None),
    ("502-html", ErrorReply.bad_gateway_html(), ServerError, 502, check_html),
    ("400", ErrorReply.bad_request(), BadRequestError, 400, check_plain_bad_request),
    ("400-too-large", ErrorReply.too_large(), BadRequestError, 400, check_too_large),
    ("400-bad-key", ErrorReply.bad_key(), BadKeyError, 400, None),
    ("403", ErrorReply.permission_denied(), BadKeyError, 403, None),
    ("404", ErrorReply.not_found("gemini-1.5-flash"), NotFoundError, 404, None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize(
    ("behaviour", "cls", "code", "check"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
async def test_http_errors(
    gemini: GeminiEmulator,
    client: GeminiClient,
    stream: bool,
    behaviour: Any,
    cls: type[GeminiError],
    code: int,
    check: Callable[[GeminiError], None] | None,
) -> None:
    gemini.script(behaviour)
    with pytest.raises(cls) as info:
        await call(client, stream)
    err = info.value
    assert err.http_status == code
    assert err.during_stream is False
    assert str(err).startswith(f"{err.kind} HTTP {code}")
    assert KEY not in str(err) and KEY not in repr(err)
    if check:
        check(err)


async def test_retry_delay_in_str(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(ErrorReply.rate_limited("37s"))
    with pytest.raises(RateLimitedError) as info:
        await client.generate(ask("x"))
    assert info.value.retry_delay == 37.0
    assert "retry in 37s" in str(info.value) and "RESOURCE_EXHAUSTED" in str(info.value)


async def test_wrong_key_missing_model_and_key_never_leaks(gemini: GeminiEmulator) -> None:
    wrong = "AIzaSy-wrong-SECRET-key"
    async with GeminiClient(api_key=wrong, base_url=gemini.base_url, model=MODEL, timeouts=FAST) as client:
        with pytest.raises(BadKeyError) as info:
            await client.generate(ask("x"))
        assert info.value.status == "INVALID_ARGUMENT" and wrong not in str(info.value)
    async with GeminiClient(
        api_key=KEY, base_url=gemini.base_url, model="gemini-1.0-pro", timeouts=FAST
    ) as client:
        with pytest.raises(NotFoundError) as nf:
            await client.generate(ask("x"))
        assert "models/gemini-1.0-pro is not found" in nf.value.message
        # Even a body that echoes the key does not leak it.
        gemini.script(ErrorReply.bad_request(f"bad key {KEY} here"))
        with pytest.raises(BadRequestError) as br:
            await client.generate(ask("x"), model=MODEL)
        assert KEY not in str(br.value) and KEY not in repr(br.value) and "***" in br.value.message


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_prompt_blocked(gemini: GeminiEmulator, client: GeminiClient, stream: bool) -> None:
    gemini.script(PromptBlocked("PROHIBITED_CONTENT"))
    with pytest.raises(PromptBlockedError) as info:
        await call(client, stream)
    assert info.value.reason == "PROHIBITED_CONTENT" and info.value.kind == "prompt_blocked"


async def test_generate_safety_finish(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(Reply("half a", finish_reason="SAFETY"))
    with pytest.raises(ResponseBlockedError) as info:
        await client.generate(ask("x"))
    assert (info.value.reason, info.value.partial_text) == ("SAFETY", "half a")


async def test_stream_safety_finish_keeps_partial(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(Reply(chunks=["Hello ", "wor"], finish_reason="SAFETY"))
    got: list[str] = []
    with pytest.raises(ResponseBlockedError) as info:
        async with aclosing(client.stream(ask("x"))) as chunks:
            async for chunk in chunks:
                got.append(chunk.text)
    assert got == ["Hello "]
    assert info.value.partial_text == "Hello wor" and info.value.reason == "SAFETY"
    assert info.value.during_stream


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize(
    "reason",
    ["OTHER", "LANGUAGE", "MALFORMED_FUNCTION_CALL", "FINISH_REASON_UNSPECIFIED", "SOMETHING_NEW"],
)
async def test_a_finish_that_is_not_safety_is_a_stop_not_a_block(
    gemini: GeminiEmulator, client: GeminiClient, stream: bool, reason: str
) -> None:
    gemini.script(Reply(chunks=["Hello ", "wor"], finish_reason=reason))
    with pytest.raises(ResponseStoppedError) as info:
        await call(client, stream)
    err = info.value
    assert (err.kind, notice_key(err), err.reason) == ("response_stopped", "stopped_reply", reason)
    assert err.partial_text == "Hello wor"


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize(
    "reason",
    [
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    ],
)
async def test_a_safety_finish_is_a_block(
    gemini: GeminiEmulator, client: GeminiClient, stream: bool, reason: str
) -> None:
    gemini.script(Reply("half a", finish_reason=reason))
    with pytest.raises(ResponseBlockedError) as info:
        await call(client, stream)
    err = info.value
    assert type(err) is ResponseBlockedError
    assert (err.kind, notice_key(err), err.reason) == ("response_blocked", "safety_reply", reason)


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_empty_max_tokens(gemini: GeminiEmulator, client: GeminiClient, stream: bool) -> None:
    gemini.script(Reply("", finish_reason="MAX_TOKENS", thoughts="t" * 400))
    with pytest.raises(EmptyResponseError) as info:
        await call(client, stream)
    assert info.value.finish_reason == "MAX_TOKENS"


@pytest.mark.parametrize("abrupt", [False, True], ids=["body-ends", "connection-drops"])
async def test_cut_stream(gemini: GeminiEmulator, client: GeminiClient, abrupt: bool) -> None:
    gemini.script(CutStream(["ab", "cd"], abrupt=abrupt))
    got: list[str] = []
    with pytest.raises(StreamCutError) as info:
        async with aclosing(client.stream(ask("x"))) as chunks:
            async for chunk in chunks:
                got.append(chunk.text)
    assert got == ["ab", "cd"]
    assert info.value.partial_text == "abcd" and info.value.during_stream


async def test_cut_non_stream_is_connection_error(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(CutStream())
    with pytest.raises(GeminiConnectionError):
        await client.generate(ask("x"))


async def test_mid_stream_error(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(MidStreamError(["par", "tial"], error_status=503), MidStreamError([], error_status=500))
    with pytest.raises(ServerError) as info:
        await collect(client.stream(ask("x")))
    err = info.value
    assert (err.http_status, err.status, err.during_stream, err.partial_text) == (
        503,
        "UNAVAILABLE",
        True,
        "partial",
    )
    assert "during stream" in str(err)
    with pytest.raises(ServerError) as first:
        await collect(client.stream(ask("x")))
    assert first.value.http_status == 500 and first.value.during_stream is False


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_read_timeout(gemini: GeminiEmulator, stream: bool) -> None:
    gemini.script(Hang(2.0))
    timeouts = GeminiTimeouts(connect=1.0, read=0.2, total=3.0)
    async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, timeouts=timeouts) as client:
        with pytest.raises(GeminiTimeoutError) as info:
            await call(client, stream)
    assert info.value.kind == "timeout" and isinstance(info.value, ServerError)
    assert not info.value.during_stream


async def test_read_timeout_after_first_chunk(gemini: GeminiEmulator) -> None:
    gemini.script(Hang(2.0, chunks=["first"]))
    timeouts = GeminiTimeouts(connect=1.0, read=0.2, total=3.0)
    async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, timeouts=timeouts) as client:
        with pytest.raises(GeminiTimeoutError) as info:
            await collect(client.stream(ask("x")))
    assert info.value.during_stream and info.value.partial_text == "first"


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_total_timeout(gemini: GeminiEmulator, stream: bool) -> None:
    # Every silence is shorter than the read timeout, but the whole call is not.
    if stream:
        gemini.script(Reply(chunks=["a"] * 8, chunk_delay=0.1))
    else:
        gemini.script(Reply("late", latency=0.45))
    timeouts = GeminiTimeouts(connect=1.0, read=0.6, total=0.35)
    async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, timeouts=timeouts) as client:
        with pytest.raises(GeminiTimeoutError) as info:
            await call(client, stream)
    assert "within 0.35s" in str(info.value)
    assert info.value.during_stream is stream


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_a_budget_under_the_total_timeout_cuts_the_call_as_a_deadline(
    gemini: GeminiEmulator, client: GeminiClient, stream: bool
) -> None:
    async def run(budget: float) -> str:
        if stream:
            return "".join(c.text for c in await collect(client.stream(ask("x"), budget=budget)))
        return (await client.generate(ask("x"), budget=budget)).text

    gemini.script(Reply("late", latency=2.0), Reply("in time", latency=0.05))
    with pytest.raises(DeadlineExceededError) as info:
        await run(0.2)
    assert info.value.kind == "deadline" and isinstance(info.value, GeminiTimeoutError)
    assert await run(3600.0) == "in time"  # a budget over the total timeout is the total timeout


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with GeminiClient(
        api_key=KEY, base_url=f"http://127.0.0.1:{port}", model=MODEL, timeouts=FAST
    ) as client:
        with pytest.raises(GeminiConnectionError) as info:
            await client.generate(ask("x"))
        assert info.value.kind == "connection" and isinstance(info.value, ServerError)
        with pytest.raises(GeminiConnectionError):
            await collect(client.stream(ask("x")))


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_disconnect(gemini: GeminiEmulator, client: GeminiClient, stream: bool) -> None:
    gemini.script(Disconnect())
    with pytest.raises(GeminiConnectionError):
        await call(client, stream)
    assert await call(client, stream) == "echo: hi"  # the pool recovers


async def test_per_model_script(gemini: GeminiEmulator, client: GeminiClient) -> None:
    gemini.script(ErrorReply.overloaded(), model="gemini-2.5-pro")
    gemini.script(Reply("shared"))
    assert (await client.generate(ask("x"))).text == "shared"
    with pytest.raises(ServerError):
        await client.generate(ask("x"), model="gemini-2.5-pro")
    assert (await client.generate(ask("y"), model="gemini-2.5-pro")).text == "echo: y"


async def test_caller_owned_http_client_stays_open(gemini: GeminiEmulator) -> None:
    async with httpx.AsyncClient() as http:
        async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model=MODEL, http=http) as client:
            assert (await client.generate(ask("x"))).text == "echo: x"
        assert not http.is_closed


# ------------------------------------------------------------------------------------ emulator fidelity


async def test_emulator_auth_and_validation(gemini: GeminiEmulator) -> None:
    url = f"{gemini.base_url}/v1beta/models/{MODEL}:generateContent"
    ok = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with httpx.AsyncClient() as http:
        r = await http.post(url, json=ok)
        assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
        r = await http.post(url, json=ok, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 401
        r = await http.post(url, json=ok, params={"key": KEY})
        assert r.status_code == 200 and r.text.startswith('{\n  "candidates"')
        h = {"x-goog-api-key": KEY}
        r = await http.post(url, json={**ok, "bogus": 1}, headers=h)
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith('Invalid JSON payload received. Unknown name "bogus"')
        r = await http.post(
            url, json={**ok, "generationConfig": {"max_output_tokens": 5, "tempo": 1}}, headers=h
        )
        assert "Unknown name \"tempo\" at 'generation_config'" in r.json()["error"]["message"]
        r = await http.post(
            url, json={"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, headers=h
        )
        assert r.status_code == 400
        r = await http.post(
            url, json={"contents": [{"role": "user", "parts": [{"text": "x", "inlineData": {}}]}]}, headers=h
        )
        assert r.status_code == 400
        r = await http.post(url, json={"contents": []}, headers=h)
        assert r.status_code == 400
        r = await http.post(
            f"{gemini.base_url}/v1beta/models/{MODEL}:streamGenerateContent", json=ok, headers=h
        )
        assert r.status_code == 200 and isinstance(r.json(), list)
        r = await http.get(f"{gemini.base_url}/v1beta/models", headers=h)
        assert f"models/{MODEL}" in [m["name"] for m in r.json()["models"]]
    # Invalid requests consume no scripted behaviour, and all are recorded.
    assert len(gemini.requests) == 9


async def test_emulator_sse_wire_format(gemini: GeminiEmulator) -> None:
    gemini.script(Reply(chunks=["a", "b"]))
    url = f"{gemini.base_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    async with httpx.AsyncClient() as http:
        r = await http.post(
            url, json={"contents": [{"parts": [{"text": "hi"}]}]}, headers={"x-goog-api-key": KEY}
        )
    assert r.headers["content-type"] == "text/event-stream"
    events = r.text.split("\r\n\r\n")
    assert events[-1] == "" and len(events) == 3
    first, last = (json.loads(e.removeprefix("data: ")) for e in events[:2])
    assert "finishReason" not in first["candidates"][0] and last["candidates"][0]["finishReason"] == "STOP"
    assert first["responseId"] == last["responseId"] and first["modelVersion"] == MODEL


# ---------------------------------------------------------------------------------------- error parser


def test_parse_proto_duration() -> None:
    assert parse_proto_duration("37s") == 37.0
    assert parse_proto_duration("45.837906927s") == pytest.approx(45.837906927)
    assert parse_proto_duration("1.5s") == 1.5
    assert parse_proto_duration("0s") == 0.0
    for bad in ("", "s", "-1s", "abc", "1.5h"):
        with pytest.raises(ValueError):
            parse_proto_duration(bad)


def test_error_from_response_shapes() -> None:
    body = {"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}}
    assert isinstance(error_from_response(429, [body]), RateLimitedError)
    assert isinstance(error_from_response(429, json.dumps(body).encode()), RateLimitedError)
    bearer = error_from_response(401, {"error": {"code": 401, "message": "m", "status": "UNAUTHENTICATED"}})
    assert isinstance(bearer, BadKeyError)
    mid = error_from_response(
        200, {"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}, during_stream=True
    )
    assert type(mid) is ServerError and mid.http_status == 503 and mid.during_stream
    html = error_from_response(502, b"<html><body>Bad <b>Gateway</b></body></html>")
    assert type(html) is ServerError and html.message == "Bad Gateway"
    assert isinstance(error_from_response(418, b""), ServerError)
    assert isinstance(error_from_response(413, b"too big"), BadRequestError)
    assert error_from_response(
        400, {"error": {"code": 400, "message": "Request payload size exceeds the limit"}}
    ).too_large  # type: ignore[attr-defined]
    # "Please retry in" in the message is used when RetryInfo is missing.
    assert error_from_response(429, {"error": {"message": "Please retry in 26.66s."}}).retry_delay == 26.66


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
error_like = st.fixed_dictionaries(
    {
        "error": st.fixed_dictionaries(
            {},
            optional={
                "code": json_values,
                "message": json_values,
                "status": json_values,
                "details": st.lists(
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
                            "retryDelay": json_values,
                            "violations": json_values,
                            "reason": json_values,
                        },
                    )
                    | json_values,
                    max_size=3,
                ),
            },
        )
    }
)


@settings(max_examples=150, deadline=None)
@given(
    status=st.integers(min_value=-1, max_value=999),
    body=st.binary(max_size=200) | st.text(max_size=200) | error_like | json_values.map(json.dumps),
    during=st.booleans(),
)
def test_error_from_response_never_raises(status: int, body: Any, during: bool) -> None:
    err = error_from_response(status, body, during_stream=during)
    assert isinstance(err, GeminiError)
    assert isinstance(str(err), str) and isinstance(err.kind, str)
    assert err.during_stream is during

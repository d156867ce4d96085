"""Gemini REST client: ``generateContent`` and ``streamGenerateContent?alt=sse`` over one httpx pool."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx
import orjson

from bot.llm.errors import (
    DeadlineExceededError,
    EmptyResponseError,
    GeminiConnectionError,
    GeminiError,
    GeminiTimeoutError,
    PromptBlockedError,
    ServerError,
    StreamCutError,
    error_from_response,
    finish_error,
)
from bot.llm.parts import read_parts
from bot.llm.sse import event_data
from bot.llm.tools import thinking_config, tools_body
from bot.llm.types import ChatMessage, LlmChunk, LlmRequest, LlmResult, ResponseExtras, Usage
from bot.transport import pooled_transport

__all__ = ["GeminiClient", "GeminiTimeouts", "build_request_body", "request_url"]

_T = TypeVar("_T")
_OK_FINISH = frozenset({"STOP", "MAX_TOKENS"})
_USER_AGENT = "gembot/0.1 (httpx)"
_DRAIN_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class GeminiTimeouts:
    """Seconds: ``read`` is the longest silence between bytes (or chunks), ``total`` bounds the whole call."""

    connect: float = 10.0
    read: float = 60.0
    total: float = 60.0


def request_url(base_url: str, api_version: str, model: str, method: str) -> str:
    """``{base}/{version}/models/{model}:{method}``; a trailing slash on the base and a ``models/`` prefix
    on the model are tolerated."""
    path = model if "/" in model else f"models/{model}"
    return f"{base_url.rstrip('/')}/{api_version}/{path}:{method}"


def _content(message: ChatMessage) -> dict[str, Any]:
    if message.parts:
        return {"role": message.role, "parts": [dict(part) for part in message.parts]}
    parts: list[dict[str, Any]] = []
    if message.text or not message.attachments:
        parts.append({"text": message.text})
    for media in message.attachments:
        if media.file_uri:
            parts.append({"fileData": {"mimeType": media.mime_type, "fileUri": media.file_uri}})
        else:
            data = base64.b64encode(media.data).decode("ascii")
            parts.append({"inlineData": {"mimeType": media.mime_type, "data": data}})
    return {"role": message.role, "parts": parts}


def build_request_body(request: LlmRequest, model: str | None = None) -> dict[str, Any]:
    """The camelCase JSON body of a generateContent call; unset generation fields are left out.

    With ``model`` named, tools and thinking settings it does not take are left out (bot.llm.tools).
    """
    body: dict[str, Any] = {}
    if request.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": request.system_instruction}]}
    body["contents"] = [_content(m) for m in request.contents]
    gen = request.generation
    config: dict[str, Any] = {}
    if gen.temperature is not None:
        config["temperature"] = gen.temperature
    if gen.top_p is not None:
        config["topP"] = gen.top_p
    if gen.max_output_tokens is not None:
        config["maxOutputTokens"] = gen.max_output_tokens
    thinking = thinking_config(
        model, budget=gen.thinking_budget, level=gen.thinking_level, include_thoughts=gen.include_thoughts
    )
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    if tools := tools_body(model, request.tools):
        body["tools"] = tools
    return body


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str | float):
        try:
            return int(value)
        except (ValueError, OverflowError):
            return 0
    return 0


def _usage(payload: Mapping[str, Any]) -> Usage | None:
    meta = payload.get("usageMetadata")
    if not isinstance(meta, Mapping):
        return None
    return Usage(
        prompt_tokens=_int(meta.get("promptTokenCount")),
        output_tokens=_int(meta.get("candidatesTokenCount")),
        thoughts_tokens=_int(meta.get("thoughtsTokenCount")),
        total_tokens=_int(meta.get("totalTokenCount")),
    )


@dataclass(frozen=True, slots=True)
class _Parsed:
    text: str
    finish_reason: str | None
    usage: Usage | None
    block_reason: str | None
    has_candidate: bool
    model_version: str
    response_id: str
    extras: ResponseExtras | None = None


_METADATA = ("groundingMetadata", "urlContextMetadata")


def _parse(payload: Mapping[str, Any]) -> _Parsed:
    """Read one GenerateContentResponse, tolerating missing or oddly typed fields."""
    read = read_parts(None)
    metadata: dict[str, Any] = {}
    finish: str | None = None
    has_candidate = False
    candidates = payload.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        has_candidate = True
        candidate = candidates[0]
        reason = candidate.get("finishReason")
        finish = reason if isinstance(reason, str) and reason else None
        content = candidate.get("content")
        # With thinking under MAX_TOKENS, content may come without "parts".
        read = read_parts(content.get("parts") if isinstance(content, Mapping) else None)
        metadata = {k: candidate[k] for k in _METADATA if isinstance(candidate.get(k), Mapping)}
    extras = None
    # Plain text parts say nothing the text does not: such a response has no extras.
    if read.thoughts or metadata or any(set(part) != {"text"} for part in read.kept):
        extras = ResponseExtras(read.thoughts, read.kept, metadata or None, read.code_runs)
    block: str | None = None
    feedback = payload.get("promptFeedback")
    if isinstance(feedback, Mapping):
        raw_block = feedback.get("blockReason")
        if isinstance(raw_block, str) and raw_block:
            block = raw_block
    version = payload.get("modelVersion")
    response_id = payload.get("responseId")
    return _Parsed(
        text=read.text,
        finish_reason=finish,
        usage=_usage(payload),
        block_reason=block,
        has_candidate=has_candidate,
        model_version=version if isinstance(version, str) else "",
        response_id=response_id if isinstance(response_id, str) else "",
        extras=extras,
    )


def _transport_error(
    exc: BaseException,
    *,
    timeouts: GeminiTimeouts,
    total: float,
    during_stream: bool,
    partial_text: str,
) -> GeminiError:
    """Map httpx/asyncio failures to typed errors; the message names the failure class, never a URL.

    ``total`` is the call's whole-call limit: ``timeouts.total``, or less when the caller's budget is.
    """
    common: dict[str, Any] = {"during_stream": during_stream, "partial_text": partial_text}
    if isinstance(exc, TimeoutError):
        if total < timeouts.total:
            return DeadlineExceededError(f"the caller's time budget of {total:.3g}s ran out", **common)
        return GeminiTimeoutError(f"no complete answer within {total:g}s", **common)
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: f"connect timeout ({timeouts.connect:g}s)",
            httpx.ReadTimeout: f"read timeout: no data for {timeouts.read:g}s",
            httpx.WriteTimeout: "write timeout",
            httpx.PoolTimeout: "timed out waiting for a pooled connection",
        }.get(type(exc), "timeout")
        return GeminiTimeoutError(what, **common)
    name = type(exc).__name__
    if during_stream and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return StreamCutError(f"connection broke mid-stream ({name})", **common)
    if isinstance(exc, httpx.ConnectError):
        return GeminiConnectionError(f"cannot connect ({name})", **common)
    if isinstance(exc, httpx.TransportError):
        if partial_text or during_stream:
            return StreamCutError(f"connection broke mid-stream ({name})", **common)
        return GeminiConnectionError(f"connection failed ({name})", **common)
    return ServerError(f"HTTP failure ({name})", **common)


async def _drain(events: AsyncIterator[str]) -> None:
    """Read the (normally empty) rest of a finished stream so its connection goes back to the pool."""
    # Closing an unfinished response drops the connection, and a new TLS handshake per call is costly.
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in events:
                pass


class GeminiClient:
    """Async Gemini REST client sharing one connection pool; every failure is a ``GeminiError``.

    ``model`` and ``base_url`` given to a call override the defaults for that call (fallbacks use this).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str,
        timeouts: GeminiTimeouts = GeminiTimeouts(),
        max_connections: int = 1000,
        http: httpx.AsyncClient | None = None,
        api_version: str = "v1beta",
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self.model = model
        self.timeouts = timeouts
        self.api_version = api_version
        self._httpx_timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.total
        )
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=self._httpx_timeout,
            transport=pooled_transport(max_connections=max_connections),
            headers={"user-agent": _USER_AGENT},
            follow_redirects=False,
        )
        # (base URL, model, method) -> the URL, headers and extensions of its requests (without a body).
        self._templates: dict[tuple[str, str, str], tuple[httpx.URL, httpx.Headers, dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"

    async def aclose(self) -> None:
        """Close the connection pool (only if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> GeminiClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key, "content-type": "application/json"}

    def _redact(self, err: GeminiError) -> GeminiError:
        # Gemini never echoes the key today; this keeps it that way whatever a proxy puts in a body.
        if self._api_key and self._api_key in err.message:
            err.message = err.message.replace(self._api_key, "***")
            err.args = (err.message,)
        return err

    def _build(
        self, request: LlmRequest, method: str, model: str | None, base_url: str | None
    ) -> httpx.Request:
        content = orjson.dumps(build_request_body(request, model or self.model))
        target = (base_url or self.base_url, model or self.model, method)
        template = self._templates.get(target)
        if template is not None:
            # The client's merge of URL, parameters and headers (about 0.15 ms) done once per target.
            url, headers, extensions = template
            return httpx.Request("POST", url, content=content, headers=headers, extensions=dict(extensions))
        built = self._http.build_request(
            "POST",
            request_url(target[0], self.api_version, target[1], method),
            params={"alt": "sse"} if method == "streamGenerateContent" else None,
            content=content,
            headers=self._headers(),
            timeout=self._httpx_timeout,
        )
        if not self._http.cookies:  # a cookie jar changes between requests: then merge every time
            headers = built.headers.copy()
            del headers["content-length"]  # each body's own
            self._templates[target] = (built.url, headers, dict(built.extensions))
        return built

    def _total(self, budget: float | None) -> float:
        return self.timeouts.total if budget is None else max(0.0, min(self.timeouts.total, budget))

    async def generate(
        self,
        request: LlmRequest,
        *,
        model: str | None = None,
        base_url: str | None = None,
        budget: float | None = None,
    ) -> LlmResult:
        """One non-streaming ``generateContent`` call.

        ``budget`` (seconds) caps the whole call below ``timeouts.total``; when it is what ends the call,
        ``DeadlineExceededError`` is raised.
        """
        total = self._total(budget)
        try:
            async with asyncio.timeout(total):
                response = await self._http.send(self._build(request, "generateContent", model, base_url))
        except (TimeoutError, httpx.HTTPError) as exc:
            raise self._redact(
                _transport_error(
                    exc, timeouts=self.timeouts, total=total, during_stream=False, partial_text=""
                )
            ) from exc
        if response.status_code != 200:
            raise self._redact(error_from_response(response.status_code, response.content))
        try:
            payload = orjson.loads(response.content)
        except (ValueError, RecursionError) as exc:
            raise ServerError("the response is not JSON", http_status=200) from exc
        if not isinstance(payload, Mapping):
            raise ServerError("the response is not a JSON object", http_status=200)
        if isinstance(payload.get("error"), Mapping):
            raise self._redact(error_from_response(200, payload))
        parsed = _parse(payload)
        if parsed.block_reason and not parsed.has_candidate:
            raise PromptBlockedError(reason=parsed.block_reason, http_status=200)
        if not parsed.has_candidate:
            raise EmptyResponseError("the response has no candidates", finish_reason="", http_status=200)
        finish = parsed.finish_reason
        if finish is None:
            raise ServerError("the response has no finishReason", http_status=200, partial_text=parsed.text)
        if finish not in _OK_FINISH:
            raise finish_error(finish, partial_text=parsed.text, http_status=200)
        if not parsed.text:
            raise EmptyResponseError(finish_reason=finish, http_status=200)
        return LlmResult(
            text=parsed.text,
            finish_reason=finish,
            usage=parsed.usage or Usage(),
            model_version=parsed.model_version,
            response_id=parsed.response_id,
            extras=parsed.extras,
        )

    async def stream(
        self,
        request: LlmRequest,
        *,
        model: str | None = None,
        base_url: str | None = None,
        budget: float | None = None,
    ) -> AsyncGenerator[LlmChunk, None]:
        """Stream ``streamGenerateContent?alt=sse``: one ``LlmChunk`` per event, the last with finish_reason.

        Consume it inside ``contextlib.aclosing`` (or to the end) so the connection is released promptly.
        ``budget`` is as for :meth:`generate`.
        """
        total = self._total(budget)
        deadline = asyncio.get_running_loop().time() + total
        sent: list[str] = []
        delivered = False

        async def guarded(awaitable: Awaitable[_T]) -> _T:
            # Bounded per await, never across a yield: a timeout spanning a yield would cancel the consumer.
            try:
                async with asyncio.timeout_at(deadline):
                    return await awaitable
            except (TimeoutError, httpx.HTTPError) as exc:
                raise self._redact(
                    _transport_error(
                        exc,
                        timeouts=self.timeouts,
                        total=total,
                        during_stream=delivered,
                        partial_text="".join(sent),
                    )
                ) from exc

        response = await guarded(
            self._http.send(self._build(request, "streamGenerateContent", model, base_url), stream=True)
        )
        try:
            await self._expect_event_stream(response, guarded)
            events = event_data(response.aiter_text())
            try:
                while True:
                    try:
                        data = await guarded(anext(events))
                    except StopAsyncIteration:
                        break
                    chunk = self._chunk(data, sent, delivered)
                    if chunk is None:
                        continue
                    sent.append(chunk.text)
                    yield chunk
                    delivered = True
                    if chunk.finish_reason is not None:
                        await _drain(events)
                        return
            finally:
                await events.aclose()
        finally:
            await response.aclose()
        raise StreamCutError(partial_text="".join(sent), during_stream=delivered)

    async def _expect_event_stream(
        self, response: httpx.Response, guarded: Callable[[Awaitable[bytes]], Awaitable[bytes]]
    ) -> None:
        """Raise the typed failure of a response that is not a 200 SSE stream (body read by ``guarded``)."""
        if response.status_code != 200:
            body = await guarded(response.aread())
            raise self._redact(error_from_response(response.status_code, body))
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != "text/event-stream":
            body = await guarded(response.aread())
            err = error_from_response(200, body)
            if err.http_status == 200:
                err = ServerError(f"expected an SSE stream, got {content_type or 'no content type'}")
            raise self._redact(err)

    def _chunk(self, data: str, sent: list[str], delivered: bool) -> LlmChunk | None:
        """The chunk for one SSE event's data, None to skip it, or raise the typed failure it carries."""
        if not data.strip() or data.strip() == "[DONE]":
            return None
        try:
            payload = orjson.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ServerError(
                "malformed JSON in the SSE stream", during_stream=delivered, partial_text="".join(sent)
            ) from exc
        if not isinstance(payload, Mapping):
            raise ServerError(
                "SSE event is not a JSON object", during_stream=delivered, partial_text="".join(sent)
            )
        if isinstance(payload.get("error"), Mapping):
            err = error_from_response(200, payload, during_stream=delivered)
            err.partial_text = "".join(sent)
            raise self._redact(err)
        parsed = _parse(payload)
        so_far = "".join(sent) + parsed.text
        if parsed.block_reason and not parsed.has_candidate:
            raise PromptBlockedError(reason=parsed.block_reason, during_stream=delivered, partial_text=so_far)
        finish = parsed.finish_reason
        if finish is not None:
            if finish not in _OK_FINISH:
                raise finish_error(finish, partial_text=so_far, during_stream=delivered)
            if not so_far:
                raise EmptyResponseError(finish_reason=finish, during_stream=delivered)
        return LlmChunk(text=parsed.text, finish_reason=finish, usage=parsed.usage, extras=parsed.extras)

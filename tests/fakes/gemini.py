"""An emulator of the Gemini REST API (aiohttp, 127.0.0.1), faithful to its documented wire format.

Typical use::

    async with GeminiEmulator() as gemini:
        gemini.script(ErrorReply.rate_limited(), Reply(chunks=["Hel", "lo"]))
        client = GeminiClient(api_key=gemini.api_key, base_url=gemini.base_url, model="gemini-2.5-flash")
        ...
        assert gemini.user_texts(0) == ["hi"]

Behaviours are consumed one per generate request (model-specific queue first, then the shared one); when
both are empty, ``default`` answers (an echo: ``"echo: <last user text>"``). Requests that fail auth, name an
unknown model or carry an invalid body get the real error and consume no behaviour.

Run standalone for benchmarks: ``python -m tests.fakes.gemini --port 8765 --latency 0.2``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import math
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.gemini_files import FilesService, media_parts_of
from tests.fakes.loopback import LoopbackServer

__all__ = [
    "DEFAULT_MODELS",
    "Behaviour",
    "CutStream",
    "Disconnect",
    "ErrorReply",
    "GeminiEmulator",
    "Hang",
    "MidStreamError",
    "PromptBlocked",
    "RecordedRequest",
    "Reply",
    "api_disabled",
    "bad_key",
    "bad_request",
    "daily_quota",
    "not_found",
    "overloaded",
    "permission_denied",
    "rate_limited",
    "server_error",
    "too_large",
    "unsupported_location",
]

DEFAULT_MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
    "gemini-3-flash-preview",
    "gemini-3.1-pro-preview",
)
MAX_PAYLOAD = 20 * 1024 * 1024  # Gemini's inline request limit
_TYPE = "type.googleapis.com/google.rpc."
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
BEARER_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def error_body(
    code: int,
    message: str | None = None,
    details: list[dict[str, Any]] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The ``{"error": {...}}`` body Gemini sends for ``code`` (``status`` when it is not the usual one)."""
    err: dict[str, Any] = {
        "code": code,
        "message": message if message is not None else _MESSAGES.get(code, "Unknown error."),
        "status": status or _STATUS.get(code, "UNKNOWN"),
    }
    if details:
        err["details"] = details
    return {"error": err}


# ---------------------------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Reply:
    """A successful answer. ``text=None`` (and no ``chunks``) echoes the last user text.

    Streaming sends ``chunks`` as given, or ``text`` split at word boundaries into pieces of about 30
    characters. ``usage`` replaces the final ``usageMetadata``. ``thoughts`` counts thinking tokens and, when
    the request asks ``includeThoughts`` (or ``show_thoughts``), is sent as a ``thought: true`` part.
    ``latency`` (before the first byte) and ``chunk_delay`` override the emulator's.

    Grounded answers (fields as in the API reference's ``Candidate``): ``grounding`` is sent as the
    candidate's ``groundingMetadata`` and ``url_context`` as its ``urlContextMetadata``, on the last chunk
    of a stream (as Gemini sends them). ``parts`` replaces the text with these model parts (e.g.
    ``executableCode``/``codeExecutionResult``, signed text), streamed one part per event. ``signature``
    is a ``thoughtSignature``: on the text part of a JSON answer, on a last ``{"text": ""}`` part of a
    stream (both observed).
    """

    text: str | None = None
    chunks: list[str] | None = None
    finish_reason: str = "STOP"
    latency: float | None = None
    chunk_delay: float | None = None
    usage: dict[str, int] | None = None
    thoughts: str | None = None
    show_thoughts: bool = False
    grounding: Mapping[str, Any] | None = None
    url_context: Mapping[str, Any] | None = None
    parts: list[dict[str, Any]] | None = None
    signature: str | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with a Gemini error body (``raw`` sends a non-JSON body instead, e.g. proxy HTML)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    latency: float | None = None
    raw: str | None = None
    content_type: str = "application/json; charset=UTF-8"

    @classmethod
    def rate_limited(
        cls,
        retry_delay: str | None = "37s",
        quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        model: str = "gemini-2.5-flash",
        message_delay: str | None = None,
    ) -> ErrorReply:
        """429 RESOURCE_EXHAUSTED: the quota form with details, the bare form if ``retry_delay`` is None.

        ``message_delay`` is the delay the message names when it differs from RetryInfo's: Gemini rounds
        ``retryDelay`` down to whole seconds (``1s``) while the message keeps them (``1.309977334s``).
        """
        if retry_delay is None:
            return cls(429, error_body(429, "Resource has been exhausted (e.g. check quota)."))
        metric = (
            "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"
            if "Token" in quota_id
            else "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        )
        limit = "250000" if "Token" in quota_id else ("20" if "PerDay" in quota_id else "10")
        message = (
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
            "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
            f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n"
            f"Please retry in {message_delay or retry_delay}."
        )
        details: list[dict[str, Any]] = [
            {
                "@type": _TYPE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": limit,
                    }
                ],
            },
            {
                "@type": _TYPE + "Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": _TYPE + "RetryInfo", "retryDelay": retry_delay},
        ]
        return cls(429, error_body(429, message, details))

    @classmethod
    def daily_quota(cls, model: str = "gemini-2.5-flash") -> ErrorReply:
        """429 for the per-day quota, with a very long retryDelay."""
        return cls.rate_limited("65205s", "GenerateRequestsPerDayPerProjectPerModel-FreeTier", model)

    @classmethod
    def server_error(cls, status: int = 500) -> ErrorReply:
        """A 5xx with Gemini's body for that status (500 INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED)."""
        return cls(status, error_body(status))

    @classmethod
    def overloaded(cls) -> ErrorReply:
        """503 UNAVAILABLE "The model is overloaded. Please try again later." """
        return cls(503, error_body(503))

    @classmethod
    def bad_gateway_html(cls) -> ErrorReply:
        """A 502 with an HTML body, as a front-end proxy sends it."""
        html = (
            "<!DOCTYPE html>\n<html lang=en>\n<title>Error 502 (Server Error)!!1</title>\n"
            "<p><b>502.</b> <ins>That’s an error.</ins>\n<p>The server encountered a temporary error and "
            "could not complete your request.<p>Please try again in 30 seconds. "
            "<ins>That’s all we know.</ins>\n"
        )
        return cls(502, raw=html, content_type="text/html; charset=UTF-8")

    @classmethod
    def bad_request(cls, message: str = "Request contains an invalid argument.") -> ErrorReply:
        """400 INVALID_ARGUMENT."""
        return cls(400, error_body(400, message))

    @classmethod
    def too_large(cls) -> ErrorReply:
        """400 for an input over the model's context window."""
        return cls.bad_request(
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
        )

    @classmethod
    def bad_key(cls) -> ErrorReply:
        """400 INVALID_ARGUMENT with ErrorInfo API_KEY_INVALID, as for a wrong key."""
        return cls(400, _bad_key_body())

    @classmethod
    def permission_denied(cls, message: str = "The caller does not have permission") -> ErrorReply:
        """403 PERMISSION_DENIED."""
        return cls(403, error_body(403, message))

    @classmethod
    def unsupported_location(cls) -> ErrorReply:
        """400 FAILED_PRECONDITION for a caller in a region the Gemini API does not serve."""
        message = "User location is not supported for the API use."
        return cls(400, error_body(400, message, status="FAILED_PRECONDITION"))

    @classmethod
    def api_disabled(cls, project: str = "123456789012") -> ErrorReply:
        """403 PERMISSION_DENIED, ErrorInfo SERVICE_DISABLED: the key's project has not enabled the API."""
        url = (
            "https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview"
            f"?project={project}"
        )
        message = (
            f"Generative Language API has not been used in project {project} before or it is disabled. "
            f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a few minutes "
            "for the action to propagate to our systems and retry."
        )
        details: list[dict[str, Any]] = [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "generativelanguage.googleapis.com",
                    "consumer": f"projects/{project}",
                    "serviceTitle": "Generative Language API",
                    "containerInfo": project,
                    "activationUrl": url,
                },
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
            {
                "@type": _TYPE + "Help",
                "links": [{"description": "Google developers console API activation", "url": url}],
            },
        ]
        return cls(403, error_body(403, message, details))

    @classmethod
    def not_found(cls, model: str = "gemini-1.5-flash", method: str = "generateContent") -> ErrorReply:
        """404 NOT_FOUND for an unknown or retired model."""
        return cls(404, _not_found_body(model, "v1beta", method))


@dataclass(frozen=True)
class PromptBlocked:
    """HTTP 200, no candidates, ``promptFeedback.blockReason`` (the first and only chunk when streaming)."""

    reason: str = "PROHIBITED_CONTENT"


@dataclass(frozen=True)
class CutStream:
    """Streams ``chunks`` without any finishReason, then ends the body (``abrupt``: drops the connection).

    For a non-streaming request, half of the JSON body is sent before the connection drops.
    """

    chunks: list[str] = field(default_factory=list)
    abrupt: bool = False


@dataclass(frozen=True)
class MidStreamError:
    """Streams ``chunks``, then a ``data: {"error": {...}}`` event (non-streaming: the plain HTTP error)."""

    chunks: list[str] = field(default_factory=list)
    error_status: int = 500


@dataclass(frozen=True)
class Hang:
    """Sends nothing for ``seconds`` (after streaming ``chunks`` when given), then gives up like a server
    deadline: 504 DEADLINE_EXCEEDED for a plain request, the stream just ends (no finishReason)."""

    seconds: float = 3600.0
    chunks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Disconnect:
    """Closes the connection without sending any response."""


Behaviour = Reply | ErrorReply | PromptBlocked | CutStream | MidStreamError | Hang | Disconnect

# Module-level spellings of the ErrorReply helpers.
rate_limited = ErrorReply.rate_limited
daily_quota = ErrorReply.daily_quota
server_error = ErrorReply.server_error
overloaded = ErrorReply.overloaded
bad_request = ErrorReply.bad_request
too_large = ErrorReply.too_large
bad_key = ErrorReply.bad_key
permission_denied = ErrorReply.permission_denied
not_found = ErrorReply.not_found
unsupported_location = ErrorReply.unsupported_location
api_disabled = ErrorReply.api_disabled


@dataclass
class RecordedRequest:
    """One request as the emulator received it (``body`` is None when it was not JSON)."""

    method: str
    path: str
    model: str
    action: str
    stream: bool
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    received_at: float
    api_version: str = ""
    peer: str = ""  # "host:port" of the client side: tells whether a connection was reused

    def contents(self) -> list[tuple[str, str]]:
        """(role, joined text parts) for every content of a generate body."""
        if not isinstance(self.body, Mapping):
            return []
        out: list[tuple[str, str]] = []
        for content in self.body.get("contents") or []:
            if isinstance(content, Mapping):
                role = str(content.get("role", "user"))
                out.append((role, _text_of(content)))
        return out


# ------------------------------------------------------------------------------------------------ helpers


def _bad_key_body() -> dict[str, Any]:
    return error_body(
        400,
        BAD_KEY_MESSAGE,
        [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": BAD_KEY_MESSAGE},
        ],
    )


def _not_found_body(model: str, version: str, method: str) -> dict[str, Any]:
    return error_body(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def _text_of(content: Mapping[str, Any]) -> str:
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"]
        for p in parts
        if isinstance(p, Mapping) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _both(names: Iterable[str]) -> frozenset[str]:
    names = list(names)
    return frozenset(names) | frozenset(_snake(n) for n in names)


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    return obj[camel] if camel in obj else obj.get(_snake(camel))


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def _split(text: str, size: int = 30) -> list[str]:
    if len(text) <= size:
        return [text]
    pieces: list[str] = []
    current = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        if current and len(current) + len(word) > size:
            pieces.append(current)
            current = ""
        current += word
    if current:
        pieces.append(current)
    return pieces


_TOP_KEYS = _both(
    [
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
    ]
) | {"model"}
_GEN_KEYS = _both(
    [
        "candidateCount",
        "stopSequences",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "responseModalities",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
    ]
)
_THINKING_KEYS = _both(["includeThoughts", "thinkingBudget", "thinkingLevel"])
_CONTENT_KEYS = frozenset({"role", "parts"})
_PART_DATA = _both(
    [
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    ]
)
_PART_EXTRA = _both(["thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"])
_FLOAT_FIELDS = ("temperature", "topP", "presencePenalty", "frequencyPenalty")
_INT_FIELDS = ("candidateCount", "maxOutputTokens", "topK", "seed", "logprobs")


class _Invalid(Exception):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def body(self) -> dict[str, Any]:
        violation: dict[str, str] = {"description": self.message}
        if self.path:
            violation = {"field": self.path, **violation}
        return error_body(
            400, self.message, [{"@type": _TYPE + "BadRequest", "fieldViolations": [violation]}]
        )


def _unknown(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed:
            where = f" at '{path}'" if path else ""
            raise _Invalid(
                f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.', path
            )


def _check_parts(parts: Any, path: str) -> None:
    if not isinstance(parts, list) or not parts:
        raise _Invalid(f"* GenerateContentRequest.{path}: contents.parts must not be empty.\n", path)
    for j, part in enumerate(parts):
        ppath = f"{path}[{j}]"
        if not isinstance(part, Mapping):
            raise _Invalid(
                f"Invalid value at '{ppath}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part)"
            )
        _unknown(part, _PART_DATA | _PART_EXTRA, ppath)
        data = [k for k in part if k in _PART_DATA]
        if not data:
            raise _Invalid(
                f"* GenerateContentRequest.{ppath}.data: required oneof field 'data' must have one "
                "initialized field\n",
                ppath,
            )
        if len(data) > 1:
            raise _Invalid(
                f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{data[1]}'",
                ppath,
            )
        if "text" in part and not isinstance(part["text"], str):
            raise _Invalid(
                f"Invalid value at '{ppath}.text' (TYPE_STRING), {json.dumps(part['text'])}", ppath
            )
        inline = _get(part, "inlineData")
        if inline is not None:
            ipath = f"{ppath}.inline_data"
            if not isinstance(inline, Mapping):
                raise _Invalid(f"Invalid value at '{ipath}'", ipath)
            _unknown(inline, _both(["mimeType", "data"]), ipath)
            if not isinstance(_get(inline, "mimeType"), str) or not _get(inline, "mimeType"):
                raise _Invalid(
                    f"* GenerateContentRequest.{ipath}.mime_type: mime_type is not specified\n", ipath
                )
            raw = _get(inline, "data")
            try:
                if not isinstance(raw, str):
                    raise ValueError
                base64.b64decode(
                    raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True
                )
            except (ValueError, binascii.Error):
                raise _Invalid(
                    f"Invalid value at '{ipath}.data' (TYPE_BYTES), "
                    f"Base64 decoding failed for {json.dumps(raw)[:60]}",
                    f"{ipath}.data",
                ) from None


def _check_number(value: Any, integral: bool, path: str) -> None:
    kind = "TYPE_INT32" if integral else "TYPE_FLOAT"
    ok = (
        isinstance(value, int) and not isinstance(value, bool)
        if integral
        else isinstance(value, int | float) and not isinstance(value, bool)
    )
    if integral and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        ok = True
    if not ok:
        raise _Invalid(f"Invalid value at '{path}' ({kind}), {json.dumps(value)[:40]}", path)


_TOOL_KEYS = _both(
    [
        "functionDeclarations",
        "googleSearchRetrieval",
        "codeExecution",
        "googleSearch",
        "urlContext",
        "computerUse",
        "fileSearch",
        "googleMaps",
    ]
)
_TOOL_TITLES = {
    "googleSearch": "Search Grounding",
    "urlContext": "Url Context",
    "codeExecution": "Code execution",
}
_LEVELS = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH")


def _thinking_generation(model: str) -> int:
    """3 for Gemini 3 (thinkingLevel), 2 for Gemini 2.5 and names the emulator does not know
    (thinkingBudget), 0 for an older Gemini that does not think."""
    match = re.match(r"gemini-(\d+)(?:\.(\d+))?", model)
    if match is None:
        return 2
    version = (int(match.group(1)), int(match.group(2) or 0))
    return 3 if version >= (3, 0) else 2 if version >= (2, 5) else 0


def _check_tools(tools: Any, model: str, rejected: Iterable[str]) -> None:
    if not isinstance(tools, list):
        raise _Invalid("Invalid value at 'tools'", "tools")
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise _Invalid(f"Invalid value at '{path}'", path)
        _unknown(tool, _TOOL_KEYS, path)
        for key in tool:
            camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
            if camel in rejected:
                title = _TOOL_TITLES.get(camel, camel)
                raise _Invalid(f"{title} is not supported for models/{model}.", path)


def _check_thinking(thinking: Mapping[str, Any], model: str) -> None:
    path = "generation_config.thinking_config"
    generation = _thinking_generation(model)
    budget, level = _get(thinking, "thinkingBudget"), _get(thinking, "thinkingLevel")
    if generation == 0:
        raise _Invalid("Thinking is not enabled for this model.", path)
    if level is not None:
        if generation < 3:
            raise _Invalid("Thinking level is not supported for this model.", f"{path}.thinking_level")
        if level not in _LEVELS:
            raise _Invalid(
                f"Invalid value at '{path}.thinking_level' (type.googleapis.com/google.ai.generativelanguage."
                f"v1beta.ThinkingConfig.ThinkingLevel), {json.dumps(level)[:40]}",
                f"{path}.thinking_level",
            )
        if budget is not None:
            raise _Invalid("You can only set only one of thinking budget and thinking level.", path)


def _validate(body: Any, model: str, rejected_tools: Iterable[str] = ()) -> None:
    """Raise _Invalid the way Gemini rejects a GenerateContentRequest."""
    if not isinstance(body, Mapping):
        raise _Invalid("Invalid JSON payload received. Expected an object.")
    _unknown(body, _TOP_KEYS, "")
    if _get(body, "tools") is not None:
        _check_tools(_get(body, "tools"), model, rejected_tools)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _Invalid("* GenerateContentRequest.contents: contents is not specified\n", "contents")
    for i, content in enumerate(contents):
        path = f"contents[{i}]"
        if not isinstance(content, Mapping):
            raise _Invalid(f"Invalid value at '{path}'", path)
        _unknown(content, _CONTENT_KEYS, path)
        role = content.get("role")
        if role is not None and role not in ("user", "model"):
            raise _Invalid("Please use a valid role: user, model.", f"{path}.role")
        _check_parts(content.get("parts"), f"{path}.parts")
    system = _get(body, "systemInstruction")
    if system is not None:
        if not isinstance(system, Mapping):
            raise _Invalid("Invalid value at 'system_instruction'", "system_instruction")
        _unknown(system, _CONTENT_KEYS, "system_instruction")
        _check_parts(system.get("parts"), "system_instruction.parts")
    config = _get(body, "generationConfig")
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise _Invalid("Invalid value at 'generation_config'", "generation_config")
    _unknown(config, _GEN_KEYS, "generation_config")
    for name in _FLOAT_FIELDS + _INT_FIELDS:
        value = _get(config, name)
        if value is not None:
            _check_number(value, name in _INT_FIELDS, f"generation_config.{_snake(name)}")
    temperature = _get(config, "temperature")
    if temperature is not None and not 0 <= float(temperature) <= 2:
        raise _Invalid(
            "* GenerateContentRequest.generation_config.temperature: temperature must be in [0.0, 2.0]\n",
            "generation_config.temperature",
        )
    stops = _get(config, "stopSequences")
    if isinstance(stops, list) and len(stops) > 5:
        raise _Invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences\n",
            "generation_config.stop_sequences",
        )
    thinking = _get(config, "thinkingConfig")
    if thinking is not None:
        path = "generation_config.thinking_config"
        if not isinstance(thinking, Mapping):
            raise _Invalid(f"Invalid value at '{path}'", path)
        _unknown(thinking, _THINKING_KEYS, path)
        _check_thinking(thinking, model)
        budget = _get(thinking, "thinkingBudget")
        if budget is not None:
            _check_number(budget, True, f"{path}.thinking_budget")
            if int(budget) == 0 and "-pro" in model:
                raise _Invalid("Budget 0 is invalid. This model only works in thinking mode.", path)


def _usage_meta(prompt: int, output: int, thoughts: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if output:
        meta["candidatesTokenCount"] = output
    meta["totalTokenCount"] = prompt + output + thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 0
    pieces = list(body.get("contents") or [])
    system = _get(body, "systemInstruction")
    if isinstance(system, Mapping):
        pieces.append(system)
    for content in pieces:
        if not isinstance(content, Mapping):
            continue
        for part in content.get("parts") or []:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    total += _tokens(part["text"])
                elif _get(part, "inlineData") is not None:
                    total += 258  # what Gemini charges for one image
    return max(total, 1)


# ----------------------------------------------------------------------------------------------- emulator


class GeminiEmulator(LoopbackServer):
    """The Gemini REST API on 127.0.0.1 with an ephemeral port (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        models: Iterable[str] = DEFAULT_MODELS,
        host: str = "127.0.0.1",
        port: int = 0,
        sse_separator: str = "\r\n\r\n",
        sse_last_separator: str | None = None,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.models = list(models)
        self.host = host
        self.port = port
        self.sse_separator = sse_separator
        # After a stream's last event; "" ends the body right after its data line, as a proxy may.
        self.sse_last_separator = sse_separator if sse_last_separator is None else sse_last_separator
        self.record = record  # off for long benchmark runs: the list would grow without bound
        # model -> the tools (REST names, e.g. "googleSearch") it answers with a 400 naming the tool
        self.rejected_tools: dict[str, set[str]] = {}
        self.default: Behaviour = Reply()
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.files = FilesService(lambda: self.base_url)

    # -- lifecycle

    async def start(self) -> str:
        """Start serving; returns the base URL (``http://127.0.0.1:PORT``)."""
        app = web.Application(client_max_size=MAX_PAYLOAD * 2)
        app.router.add_post("/{version}/models/{target}", self._generate)
        app.router.add_get("/{version}/models", self._list_models)
        app.router.add_get("/{version}/models/{model}", self._get_model)
        self.files.routes(app, self._auth)
        # A dropped client must stop its handler (Hang, slow streams), as a real server would.
        return await self._serve(app, handler_cancellation=True)

    async def stop(self) -> None:
        """Stop serving; in-flight requests (hangs, slow streams) are cancelled."""
        for task in list(self._tasks):
            task.cancel()
        await self._close()

    # -- scripting and inspection

    def script(self, *behaviours: Behaviour, model: str | None = None) -> None:
        """Queue behaviours, one per generate request (only requests to ``model`` when given)."""
        self._queues.setdefault(model, deque()).extend(behaviours)

    def pending(self, model: str | None = None) -> int:
        """How many scripted behaviours are still queued (for ``model``, or the shared queue)."""
        return len(self._queues.get(model, ()))

    def reset(self) -> None:
        """Forget recorded requests and queued behaviours, and restore the echo default."""
        self.requests.clear()
        self._queues.clear()
        self.default = Reply()

    def contents(self, i: int) -> list[tuple[str, str]]:
        """(role, text) of every content of request ``i`` (negative indexes work)."""
        return self.requests[i].contents()

    def media(self, i: int) -> list[tuple[str, dict[str, Any]]]:
        """("inlineData" or "fileData", the part's value) of every media part of request ``i``, in order."""
        return [(kind, dict(part)) for kind, part in media_parts_of(self.requests[i].body)]

    def user_texts(self, i: int) -> list[str]:
        """The texts of the user contents of request ``i``."""
        return [text for role, text in self.contents(i) if role == "user"]

    def _next(self, model: str) -> Behaviour:
        for key in (model, None):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        return self.default

    # -- handlers

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        return _json(200, {"models": [self._model_info(m) for m in self.models]})

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        model = request.match_info["model"]
        if model not in self.models:
            return _json(
                404,
                error_body(
                    404, f"models/{model} is not found for API version {request.match_info['version']}."
                ),
            )
        return _json(200, self._model_info(model))

    @staticmethod
    def _model_info(model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model.replace("-", " ").title(),
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": True,
        }

    def _auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            if request.headers.get("authorization", "").lower().startswith("bearer "):
                return _json(
                    401,
                    error_body(
                        401,
                        BEARER_MESSAGE,
                        [
                            {
                                "@type": _TYPE + "ErrorInfo",
                                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                "metadata": {"service": "generativelanguage.googleapis.com"},
                            }
                        ],
                    ),
                )
            return _json(403, error_body(403, NO_KEY_MESSAGE))
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            return _json(400, _bad_key_body())
        return None

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        self._track()
        version = request.match_info["version"]
        target = request.match_info["target"]
        model, _, action = target.rpartition(":")
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        stream = action == "streamGenerateContent"
        sse = stream and request.query.get("alt") == "sse"
        if self.record:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    model=model,
                    action=action,
                    stream=stream,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    body=body,
                    received_at=time.monotonic(),
                    api_version=version,
                    peer=_peer(request),
                )
            )

        early = self._check(request, version, model, action, raw, body)
        if early is not None:
            await asyncio.sleep(self.latency)
            return early
        if action == "countTokens":
            await asyncio.sleep(self.latency)
            inner = _get(body, "generateContentRequest") or body
            n = _prompt_tokens(inner if isinstance(inner, Mapping) else {})
            return _json(
                200, {"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}
            )

        behaviour = self._next(model)
        latency = getattr(behaviour, "latency", None)
        await asyncio.sleep(self.latency if latency is None else latency)
        ctx = _Call(self, request, model, body, stream, sse)
        if isinstance(behaviour, Reply):
            return await ctx.reply(behaviour)
        if isinstance(behaviour, ErrorReply):
            return ctx.error(behaviour.status, behaviour.body, behaviour.raw, behaviour.content_type)
        if isinstance(behaviour, PromptBlocked):
            return await ctx.prompt_blocked(behaviour)
        if isinstance(behaviour, CutStream):
            return await ctx.cut(behaviour)
        if isinstance(behaviour, MidStreamError):
            return await ctx.mid_stream_error(behaviour)
        if isinstance(behaviour, Hang):
            return await ctx.hang(behaviour)
        return await ctx.disconnect()

    def _check(
        self, request: web.Request, version: str, model: str, action: str, raw: bytes, body: Any
    ) -> web.Response | None:
        """The error Gemini gives before generating anything, or None."""
        if (denied := self._auth(request)) is not None:
            return denied
        if version not in ("v1", "v1beta") or action not in (
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ):
            return _json(404, error_body(404, f"Method not found: {request.path}"))
        if model not in self.models:
            return _json(404, _not_found_body(model, version, action))
        if len(raw) > MAX_PAYLOAD:
            return _json(
                400, error_body(400, f"Request payload size exceeds the limit: {MAX_PAYLOAD} bytes.")
            )
        if body is None:
            return _json(400, error_body(400, "Invalid JSON payload received. Unexpected token."))
        if action == "countTokens":
            return None
        try:
            _validate(body, model, self.rejected_tools.get(model, ()))
        except _Invalid as exc:
            return _json(400, exc.body())
        return self.files.check_request(body)

    # -- CLI

    async def serve_forever(self) -> None:
        """Serve until cancelled (or SIGINT/SIGTERM in the CLI)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


def _peer(request: web.Request) -> str:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        charset="UTF-8",
    )


class _Call:
    """Writes one generate answer in the shape the request asked for (JSON, JSON array or SSE)."""

    def __init__(
        self, emulator: GeminiEmulator, request: web.Request, model: str, body: Any, stream: bool, sse: bool
    ) -> None:
        self.emu = emulator
        self.request = request
        self.model = model
        self.body: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        self.stream = stream
        self.sse = sse
        self.response_id = secrets.token_urlsafe(16)[:22]
        self.prompt_tokens = _prompt_tokens(self.body)
        self.resp: web.StreamResponse | None = None

    # -- building blocks

    def _include_thoughts(self) -> bool:
        config = _get(self.body, "generationConfig")
        thinking = _get(config, "thinkingConfig") if isinstance(config, Mapping) else None
        return bool(isinstance(thinking, Mapping) and _get(thinking, "includeThoughts"))

    def _echo(self) -> str:
        users = [
            c for c in self.body.get("contents") or [] if isinstance(c, Mapping) and c.get("role") != "model"
        ]
        return "echo: " + (_text_of(users[-1]) if users else "")

    def _response(
        self,
        parts: list[dict[str, Any]],
        finish: str | None,
        usage: dict[str, Any] | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"role": "model"}
        if parts:
            content = {"parts": parts, "role": "model"}
        candidate: dict[str, Any] = {"content": content}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate.update(metadata or {})
        candidate["index"] = 0
        out: dict[str, Any] = {"candidates": [candidate]}
        if usage is not None:
            out["usageMetadata"] = usage
        out["modelVersion"] = self.model
        out["responseId"] = self.response_id
        return out

    def _partial_chunks(self, texts: list[str]) -> list[dict[str, Any]]:
        out = []
        so_far = ""
        for text in texts:
            so_far += text
            usage = _usage_meta(self.prompt_tokens, _tokens(so_far), 0)
            out.append(self._response([{"text": text}], None, usage))
        return out

    async def _open_sse(self) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Content-Disposition": "attachment",
                "Vary": "Origin, X-Origin, Referer",
                "X-Content-Type-Options": "nosniff",
            },
        )
        await resp.prepare(self.request)
        self.resp = resp
        return resp

    async def _event(self, payload: Any, *, last: bool = False) -> None:
        assert self.resp is not None
        line = json.dumps(payload, ensure_ascii=False)  # single line, ", " / ": " separators as observed
        separator = self.emu.sse_last_separator if last else self.emu.sse_separator
        await self.resp.write(f"data: {line}{separator}".encode())

    async def _send_stream(self, chunks: list[dict[str, Any]], delay: float) -> web.StreamResponse:
        """SSE (alt=sse) or, without it, one JSON array; ``delay`` between SSE events."""
        if not self.sse:
            return _json(200, chunks)
        resp = await self._open_sse()
        for i, chunk in enumerate(chunks):
            if i and delay:
                await asyncio.sleep(delay)
            await self._event(chunk, last=i == len(chunks) - 1)
        await resp.write_eof()
        return resp

    async def _drop(self) -> web.StreamResponse:
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        # connection_lost cancels this handler (handler_cancellation); wait for it.
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- behaviours

    async def reply(self, reply: Reply) -> web.StreamResponse:
        text = reply.text if reply.text is not None else None
        metadata: dict[str, Any] = {}
        if reply.grounding is not None:
            metadata["groundingMetadata"] = reply.grounding
        if reply.url_context is not None:
            metadata["urlContextMetadata"] = reply.url_context
        if reply.parts is not None:
            return await self._reply_parts(reply, metadata)
        if reply.chunks is not None:
            pieces = list(reply.chunks)
            text = "".join(pieces)
        else:
            text = self._echo() if text is None else text
            pieces = _split(text) if self.stream else [text]
        thoughts_tokens = _tokens(reply.thoughts or "")
        final_out = _tokens(text)
        final = _usage_meta(self.prompt_tokens, final_out, thoughts_tokens)
        if reply.usage is not None:
            final = dict(reply.usage)
        show_thoughts = bool(reply.thoughts) and (reply.show_thoughts or self._include_thoughts())
        thought_part = [{"text": reply.thoughts, "thought": True}] if show_thoughts else []

        signed = {"thoughtSignature": reply.signature} if reply.signature else {}
        if not self.stream:
            parts = thought_part + ([{"text": text, **signed}] if text or signed else [])
            return _json(200, self._response(parts, reply.finish_reason, final, metadata))

        chunks: list[dict[str, Any]] = []
        n = len(pieces)
        so_far = ""
        for i, piece in enumerate(pieces):
            last = i == n - 1
            so_far += piece
            usage = final if last else _usage_meta(self.prompt_tokens, _tokens(so_far), thoughts_tokens)
            parts = (thought_part if i == 0 else []) + ([{"text": piece}] if piece else [])
            if last and signed:
                parts.append({"text": "", **signed})
            finish = reply.finish_reason if last else None
            chunks.append(self._response(parts, finish, usage, metadata if last else None))
        delay = self.emu.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        return await self._send_stream(chunks, delay)

    async def _reply_parts(self, reply: Reply, metadata: Mapping[str, Any]) -> web.StreamResponse:
        """An answer made of ``reply.parts`` as given (thought parts only when thoughts were asked for)."""
        parts = [p for p in reply.parts or [] if not p.get("thought") or self._include_thoughts()]
        shown = "".join(str(p.get("text", "")) for p in parts if not p.get("thought"))
        final = (
            dict(reply.usage)
            if reply.usage is not None
            else _usage_meta(self.prompt_tokens, _tokens(shown), _tokens(reply.thoughts or ""))
        )
        if not self.stream:
            return _json(200, self._response(parts, reply.finish_reason, final, metadata))
        chunks = [
            self._response(
                [part],
                reply.finish_reason if i == len(parts) - 1 else None,
                final if i == len(parts) - 1 else None,
                metadata if i == len(parts) - 1 else None,
            )
            for i, part in enumerate(parts)
        ]
        delay = self.emu.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        return await self._send_stream(chunks, delay)

    def error(
        self,
        status: int,
        body: dict[str, Any],
        raw: str | None = None,
        content_type: str = "application/json",
    ) -> web.Response:
        if raw is not None:
            return web.Response(status=status, text=raw, headers={"Content-Type": content_type})
        # The streaming endpoint without alt=sse answers errors in the array form too.
        payload: Any = [body] if self.stream and not self.sse else body
        return _json(status, payload)

    async def prompt_blocked(self, blocked: PromptBlocked) -> web.StreamResponse:
        payload = {
            "promptFeedback": {"blockReason": blocked.reason},
            "usageMetadata": {"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens},
            "modelVersion": self.model,
            "responseId": self.response_id,
        }
        if not self.stream:
            return _json(200, payload)
        return await self._send_stream([payload], 0)

    async def cut(self, cut: CutStream) -> web.StreamResponse:
        chunks = self._partial_chunks(cut.chunks)
        if not self.sse:
            body = json.dumps(chunks if self.stream else self._response([], None, None), indent=2).encode()
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json; charset=UTF-8"})
            resp.content_length = len(body)
            await resp.prepare(self.request)
            await resp.write(body[: len(body) // 2])
            return await self._drop()
        resp = await self._open_sse()
        for chunk in chunks:
            await self._event(chunk)
        if cut.abrupt:
            return await self._drop()
        await resp.write_eof()
        return resp

    async def mid_stream_error(self, mid: MidStreamError) -> web.StreamResponse:
        err = error_body(mid.error_status)
        if not self.sse:
            return self.error(mid.error_status, err)
        resp = await self._open_sse()
        for chunk in self._partial_chunks(mid.chunks):
            await self._event(chunk)
        await self._event(err)
        await resp.write_eof()
        return resp

    async def hang(self, hang: Hang) -> web.StreamResponse:
        if hang.chunks and self.sse:
            resp = await self._open_sse()
            for chunk in self._partial_chunks(hang.chunks):
                await self._event(chunk)
            await asyncio.sleep(hang.seconds)
            await resp.write_eof()
            return resp
        await asyncio.sleep(hang.seconds)
        return self.error(504, error_body(504))

    async def disconnect(self) -> web.StreamResponse:
        return await self._drop()


def main(argv: list[str] | None = None) -> None:
    """CLI: serve the emulator until killed, printing its base URL on stdout."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.gemini", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before the first byte")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE chunks")
    parser.add_argument("--api-key", default="test-key")
    args = parser.parse_args(argv)

    async def run() -> None:
        emulator = GeminiEmulator(
            api_key=args.api_key,
            latency=args.latency,
            chunk_delay=args.chunk_delay,
            host=args.host,
            port=args.port,
            record=False,
        )
        await emulator.start()
        print(emulator.base_url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await emulator.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()

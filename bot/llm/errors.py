"""Typed Gemini failures, and the parser that turns Gemini's error bodies into them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "SAFETY_FINISH_REASONS",
    "BadKeyError",
    "BadRequestError",
    "DeadlineExceededError",
    "EmptyResponseError",
    "GeminiConnectionError",
    "GeminiError",
    "GeminiTimeoutError",
    "MisconfiguredError",
    "NotFoundError",
    "PromptBlockedError",
    "RateLimitedError",
    "ResponseBlockedError",
    "ResponseStoppedError",
    "ServerError",
    "StreamCutError",
    "error_from_response",
    "finish_error",
    "parse_proto_duration",
]

_TYPE_PREFIX = "type.googleapis.com/"
_FILE_ACCESS_RE = re.compile(r"permission to access the File|File \S+ .*(?:not found|may not exist)", re.I)
_FILE_ID_RE = re.compile(r"\bFile ([A-Za-z0-9_-]+)")
_TOO_LARGE_RE = re.compile(
    r"too (?:long|large|many tokens)|exceeds? the (?:maximum|limit)|token count.*exceeds|payload size|"
    r"request entity too large|context (?:length|window)",
    re.IGNORECASE | re.DOTALL,
)
_CONFIG_RE = re.compile(
    r"generation_?config|thinking[ _]?(?:config|mode|budget|level)|budget -?\d+ is invalid",
    re.IGNORECASE,
)
_SERVICE_DISABLED_RE = re.compile(r"has not been used in project|API .*is disabled", re.IGNORECASE)
_RETRY_IN_RE = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*$")
_TAG_RE = re.compile(r"<[^>]*>")
_SPACE_RE = re.compile(r"\s+")
_MAX_MESSAGE = 300

SAFETY_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
"""finishReason values that mean Gemini's safety (or recitation) checks stopped the reply."""


class GeminiError(Exception):
    """Base of every Gemini failure.

    ``http_status`` is the HTTP status (or the ``code`` of a mid-stream error event), ``status`` Gemini's
    canonical status string, ``message`` Gemini's message (never holding the API key), ``retry_delay`` the
    server's ``RetryInfo`` delay in seconds, ``during_stream`` whether at least one chunk had already been
    delivered, and ``partial_text`` the text delivered before the failure (streams only).
    """

    kind: ClassVar[str] = "error"

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        status: str | None = None,
        retry_delay: float | None = None,
        during_stream: bool = False,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.status = status
        self.retry_delay = retry_delay
        self.during_stream = during_stream
        self.partial_text = partial_text

    def _extra(self) -> list[str]:
        return []

    def __str__(self) -> str:
        head = [self.kind]
        if self.http_status is not None:
            head.append(f"HTTP {self.http_status}")
        if self.status:
            head.append(self.status)
        text = " ".join(head)
        if self.message:
            text += f": {self.message}"
        extra = self._extra()
        if self.retry_delay is not None:
            extra.append(f"retry in {self.retry_delay:g}s")
        if self.during_stream:
            extra.append("during stream")
        if extra:
            text += f" ({', '.join(extra)})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class BadRequestError(GeminiError):
    """The request was rejected as invalid (400); retrying the same request cannot help."""

    kind: ClassVar[str] = "bad_request"

    def __init__(self, message: str = "", *, too_large: bool | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.too_large = bool(_TOO_LARGE_RE.search(message)) if too_large is None else too_large

    @property
    def file_gone(self) -> str | None:
        """For a request naming a Files API file Gemini no longer holds: the file's id ("" when the
        message names none); None for any other refusal."""
        if not _FILE_ACCESS_RE.search(self.message):
            return None
        named = _FILE_ID_RE.search(self.message)
        return named.group(1) if named else ""

    def _extra(self) -> list[str]:
        return ["too large"] if self.too_large else []


class BadKeyError(GeminiError):
    """The API key is invalid, missing or not allowed (400 API_KEY_INVALID, 401, 403)."""

    kind: ClassVar[str] = "bad_key"


class MisconfiguredError(GeminiError):
    """Gemini refuses the bot's configuration, not the message: the API is not enabled for the key's
    project (403 SERVICE_DISABLED), the caller's region is not served (400 FAILED_PRECONDITION), or the
    model refuses the generation config (400 INVALID_ARGUMENT about it, e.g. a thinking budget of 0).

    Only an operator can fix it; the same request on the same route fails the same way.
    """

    kind: ClassVar[str] = "misconfigured"


class NotFoundError(MisconfiguredError):
    """The model (or API version) does not exist (404)."""

    kind: ClassVar[str] = "not_found"


class RateLimitedError(GeminiError):
    """Rate limit or quota exhausted (429). ``quota_ids`` come from the QuotaFailure violations."""

    kind: ClassVar[str] = "rate_limited"

    def __init__(self, message: str = "", *, quota_ids: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.quota_ids: tuple[str, ...] = tuple(quota_ids)

    def waiting(self, seconds: float) -> RateLimitedError:
        """The same 429 with ``retry_delay`` set to ``seconds``."""
        return RateLimitedError(
            self.message,
            quota_ids=self.quota_ids,
            http_status=self.http_status,
            status=self.status,
            retry_delay=seconds,
            during_stream=self.during_stream,
            partial_text=self.partial_text,
        )

    @property
    def is_long_window(self) -> bool:
        """True when a daily or monthly quota is exhausted: waiting a few seconds will not help."""
        return any("PerDay" in q or "PerMonth" in q for q in self.quota_ids)

    def _extra(self) -> list[str]:
        return [f"quota {', '.join(self.quota_ids)}"] if self.quota_ids else []


class ServerError(GeminiError):
    """Gemini (or something in between) failed: 5xx or an unexpected answer. Worth a retry."""

    kind: ClassVar[str] = "server"


class GeminiTimeoutError(ServerError):
    """No answer in time: connect, idle read, write, pool or whole-call timeout."""

    kind: ClassVar[str] = "timeout"


class DeadlineExceededError(GeminiTimeoutError):
    """The caller's time budget (what was left of the answer's ``retry.deadline``) ran out while this
    request was under way, so it was cut short.

    Our own budget ended it, not Gemini: it says nothing about the endpoint's health.
    """

    kind: ClassVar[str] = "deadline"


class GeminiConnectionError(ServerError):
    """The connection could not be made, or broke before a response arrived."""

    kind: ClassVar[str] = "connection"


class PromptBlockedError(GeminiError):
    """Gemini refused the prompt (``promptFeedback.blockReason``)."""

    kind: ClassVar[str] = "prompt_blocked"

    def __init__(self, message: str = "", *, reason: str, **kwargs: Any) -> None:
        super().__init__(message or f"prompt blocked: {reason}", **kwargs)
        self.reason = reason


class ResponseBlockedError(GeminiError):
    """Gemini's safety checks stopped the reply (a finishReason in ``SAFETY_FINISH_REASONS``)."""

    kind: ClassVar[str] = "response_blocked"

    def __init__(self, message: str = "", *, reason: str, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message or f"response stopped: {reason}", partial_text=partial_text, **kwargs)
        self.reason = reason


class ResponseStoppedError(ResponseBlockedError):
    """The reply stopped early for a reason that is not safety (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL,
    FINISH_REASON_UNSPECIFIED or one unknown to us).

    A subclass so that what was shown stays shown, as for a safety stop; only the notice differs.
    """

    kind: ClassVar[str] = "response_stopped"


def finish_error(reason: str, *, partial_text: str = "", **kwargs: Any) -> ResponseBlockedError:
    """The error for a reply that ended with ``reason`` (anything but STOP or MAX_TOKENS)."""
    cls = ResponseBlockedError if reason in SAFETY_FINISH_REASONS else ResponseStoppedError
    return cls(reason=reason, partial_text=partial_text, **kwargs)


class StreamCutError(GeminiError):
    """The stream ended, or the connection broke, before a chunk carried a finishReason."""

    kind: ClassVar[str] = "stream_cut"

    def __init__(self, message: str = "", *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message or "stream ended without finishReason", partial_text=partial_text, **kwargs)


class EmptyResponseError(GeminiError):
    """The reply finished normally but holds no text (e.g. thinking used the whole output budget)."""

    kind: ClassVar[str] = "empty_response"

    def __init__(self, message: str = "", *, finish_reason: str, **kwargs: Any) -> None:
        super().__init__(
            message or f"no text in the reply (finishReason {finish_reason or 'missing'})", **kwargs
        )
        self.finish_reason = finish_reason


def parse_proto_duration(s: str) -> float:
    """Seconds in a protobuf Duration string such as ``"37s"`` or ``"45.837906927s"`` (``ms`` also read)."""
    match = _DURATION_RE.match(s)
    if match is None:
        raise ValueError(f"not a duration: {s[:40]!r}")
    value = float(match.group(1))
    if match.group(2) == "ms":
        value /= 1000.0
    if not math.isfinite(value):
        raise ValueError(f"not a finite duration: {s[:40]!r}")
    return value


def _clip(text: str) -> str:
    text = _SPACE_RE.sub(" ", text).strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _decode(body: bytes | str | Mapping[str, Any] | Any) -> tuple[Any, str]:
    """The parsed JSON (or None) and the raw text of a body."""
    if isinstance(body, bytes | bytearray):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        return body, ""
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):
        return None, text


def _error_object(parsed: Any) -> Mapping[str, Any] | None:
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if isinstance(parsed, Mapping):
        err = parsed.get("error")
        if isinstance(err, Mapping):
            return err
    return None


def _details(err: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = err.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, Mapping)]


def _detail_type(detail: Mapping[str, Any]) -> str:
    kind = detail.get("@type")
    return kind.removeprefix(_TYPE_PREFIX) if isinstance(kind, str) else ""


def _retry_info_delay(details: list[Mapping[str, Any]]) -> float | None:
    for detail in details:
        if _detail_type(detail) == "google.rpc.RetryInfo":
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                try:
                    return parse_proto_duration(delay)
                except ValueError:
                    pass
            elif isinstance(delay, Mapping):  # the proto form {"seconds": .., "nanos": ..}
                try:
                    return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
                except (TypeError, ValueError, OverflowError):
                    pass
    return None


def _message_delay(message: str) -> float | None:
    match = _RETRY_IN_RE.search(message)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000.0 if match.group(2).lower() == "ms" else value


def _retry_delay(details: list[Mapping[str, Any]], message: str) -> float | None:
    """The longer of RetryInfo's delay and the message's "Please retry in 26.66s.": RetryInfo is rounded
    down to whole seconds, and newer quota messages name a delay even when RetryInfo is missing."""
    delays = [d for d in (_retry_info_delay(details), _message_delay(message)) if d is not None]
    return max(delays) if delays else None


def _quota_ids(details: list[Mapping[str, Any]]) -> tuple[str, ...]:
    ids: list[str] = []
    for detail in details:
        if _detail_type(detail) != "google.rpc.QuotaFailure":
            continue
        violations = detail.get("violations")
        if not isinstance(violations, list):
            continue
        for violation in violations:
            if isinstance(violation, Mapping):
                quota_id = violation.get("quotaId")
                if isinstance(quota_id, str) and quota_id:
                    ids.append(quota_id)
    return tuple(ids)


def _error_info_reason(details: list[Mapping[str, Any]]) -> str:
    for detail in details:
        if _detail_type(detail) == "google.rpc.ErrorInfo":
            reason = detail.get("reason")
            if isinstance(reason, str):
                return reason
    return ""


def _is_key_invalid(details: list[Mapping[str, Any]], message: str) -> bool:
    return _error_info_reason(details) == "API_KEY_INVALID" or "api key not valid" in message.lower()


def _is_service_disabled(details: list[Mapping[str, Any]], message: str) -> bool:
    return _error_info_reason(details) == "SERVICE_DISABLED" or bool(_SERVICE_DISABLED_RE.search(message))


def _is_config_refused(details: list[Mapping[str, Any]], message: str, status: str | None) -> bool:
    """A 400 about the project or the generation config rather than the message."""
    if status == "FAILED_PRECONDITION":
        return True
    for detail in details:
        if _detail_type(detail) == "google.rpc.BadRequest":
            for violation in detail.get("fieldViolations") or ():
                field = violation.get("field") if isinstance(violation, Mapping) else None
                if isinstance(field, str) and _CONFIG_RE.match(field):
                    return True
    return bool(_CONFIG_RE.search(message))


def error_from_response(
    status_code: int,
    body: bytes | str | Mapping[str, Any] | list[Any],
    *,
    during_stream: bool = False,
) -> GeminiError:
    """Turn an HTTP status and Gemini error body into the matching ``GeminiError``.

    Accepts the ``{"error": {...}}`` shape, its ``[{"error": {...}}]`` list form, and bodies that are not
    JSON at all (an HTML 502 from a proxy). Never raises.
    """
    try:
        return _error_from_response(status_code, body, during_stream=during_stream)
    except Exception as exc:  # a parser for untrusted bodies must not fail the caller
        return ServerError(
            f"unparseable error body ({type(exc).__name__})",
            http_status=status_code if isinstance(status_code, int) else None,
            during_stream=during_stream,
        )


def _error_from_response(status_code: int, body: Any, *, during_stream: bool) -> GeminiError:
    parsed, raw = _decode(body)
    err = _error_object(parsed)
    code = status_code
    if err is not None:
        raw_message = err.get("message")
        full = raw_message if isinstance(raw_message, str) else ""  # the delay may be past the clip
        message = _clip(full)
        raw_status = err.get("status")
        status = raw_status if isinstance(raw_status, str) and raw_status else None
        details = _details(err)
        err_code = err.get("code")
        # A mid-stream error event arrives on a 200 response: its own code is the real status.
        if code < 400 and isinstance(err_code, int) and not isinstance(err_code, bool):
            code = err_code
    else:
        text = _TAG_RE.sub(" ", raw) if raw else ""
        full = text
        message = _clip(text) if text.strip() else "no error details in the response body"
        status = None
        details = []

    common: dict[str, Any] = {"http_status": code, "status": status, "during_stream": during_stream}
    if code == 400:
        if _is_key_invalid(details, message):
            return BadKeyError(message, **common)
        if _is_config_refused(details, message, status):
            return MisconfiguredError(message, **common)
        return BadRequestError(message, **common)
    if code in (401, 403):
        if _FILE_ACCESS_RE.search(message):
            # A file the request names is gone (expired, deleted) or another project's: not the key.
            return BadRequestError(message, **common)
        if _is_service_disabled(details, message):
            return MisconfiguredError(message, **common)
        return BadKeyError(message, **common)
    if code == 404:
        return NotFoundError(message, **common)
    if code == 408:
        return GeminiTimeoutError(message, **common)
    if code == 413:
        return BadRequestError(message, too_large=True, **common)
    if code == 429:
        return RateLimitedError(
            message, quota_ids=_quota_ids(details), retry_delay=_retry_delay(details, full), **common
        )
    return ServerError(message, **common)

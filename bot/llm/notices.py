"""What the user is told when Gemini gives no answer: one table from each failure to its notice.

Rows are tried in order and the first that matches wins, so a subclass (or a narrower condition) comes
before its base. Every notice text may use ``{reason}`` (a safety or stop reason, in the user's language)
and ``{retry}`` (when to come back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain import Notice, NoticeKind
from bot.i18n import Language, format_wait, text
from bot.llm.errors import (
    BadKeyError,
    BadRequestError,
    EmptyResponseError,
    GeminiError,
    MisconfiguredError,
    PromptBlockedError,
    RateLimitedError,
    ResponseBlockedError,
    ResponseStoppedError,
    StreamCutError,
)
from bot.llm.policy import QuotaExceededError

__all__ = ["failure_notice", "notice_key"]


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Row:
    error: type[GeminiError]
    kind: NoticeKind
    key: str
    when: Callable[[Any], bool] = _always
    default_wait: float = 60.0  # seconds, for ``{retry}`` when the error names no delay


_TABLE: tuple[_Row, ...] = (
    _Row(PromptBlockedError, NoticeKind.SAFETY, "safety_prompt"),
    _Row(ResponseStoppedError, NoticeKind.ERROR, "stopped_reply"),
    _Row(ResponseBlockedError, NoticeKind.SAFETY, "safety_reply"),
    _Row(QuotaExceededError, NoticeKind.QUOTA, "quota"),
    _Row(BadKeyError, NoticeKind.BAD_KEY, "bad_key"),
    _Row(MisconfiguredError, NoticeKind.MISCONFIGURED, "misconfigured"),
    _Row(BadRequestError, NoticeKind.BAD_REQUEST, "request_too_large", when=lambda e: e.too_large),
    _Row(BadRequestError, NoticeKind.BAD_REQUEST, "bad_request"),
    _Row(RateLimitedError, NoticeKind.QUOTA, "gemini_quota", lambda e: e.is_long_window, 86400.0),
    _Row(RateLimitedError, NoticeKind.QUOTA, "gemini_busy"),
    _Row(EmptyResponseError, NoticeKind.ERROR, "length_no_text", lambda e: e.finish_reason == "MAX_TOKENS"),
    _Row(EmptyResponseError, NoticeKind.ERROR, "empty_reply"),
    _Row(StreamCutError, NoticeKind.CUT, "cut"),
    _Row(GeminiError, NoticeKind.UNAVAILABLE, "unavailable"),
)


def _row(exc: GeminiError) -> _Row:
    return next(row for row in _TABLE if isinstance(exc, row.error) and row.when(exc))


def notice_key(exc: GeminiError) -> str:
    """The catalogue key of the notice for ``exc``."""
    return _row(exc).key


def _reason(exc: GeminiError, language: Language) -> str:
    reason = exc.reason if isinstance(exc, PromptBlockedError | ResponseBlockedError) else ""
    try:
        return text(language, f"safety_reason_{reason.lower()}")
    except KeyError:
        return reason.lower().replace("_", " ")


def failure_notice(exc: GeminiError, language: Language) -> Notice:
    """The notice that tells the user why ``exc`` left them without an answer."""
    row = _row(exc)
    wait = exc.retry_delay if exc.retry_delay is not None else row.default_wait
    values = {"reason": _reason(exc, language), "retry": format_wait(wait, language)}
    return Notice(row.kind, text(language, row.key, **values))

"""structlog setup with one redaction step that every log line passes, third-party loggers included."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, TextIO

import structlog

# Every pattern is bounded (no unbounded repetition that can backtrack), so redaction takes time linear in
# the text: a log line is redacted on the event loop, and one quadratic pattern on a long body stalls it.
# Token shapes worth masking even when they are not the configured values.
_SECRET_PATTERNS = [
    # Telegram bot token; no \b before it, as URLs glue it to "bot" (/bot123:ABC.../sendMessage).
    re.compile(r"(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack bot/user tokens
    re.compile(r"\bxapp-[A-Za-z0-9-]{10,}"),  # Slack app-level token
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),  # Google API key
    re.compile(
        r"(?i)(x-goog-api-key|authorization|api[_-]?key|token|secret)"
        r"([\"']?\s{0,16}[:=]\s{0,16}[\"']?)[^\s\"',}]+"
    ),
]
URL_PASSWORD = re.compile(
    r"([a-z][a-z0-9+.-]{0,31}://[^\s:/@]{0,256})(:)[^\s?#\"'<>]{1,256}(?=@[^\s@/?#\"'<>]{1,256})"
)
"""The password of a URL (postgresql://user:pw@host, redis://:pw@host); groups 1 and 2 are what stays.

The password runs to the last ``@`` before the host, so one holding ``/`` or ``@`` is masked whole."""
_SECRET_PATTERNS.append(URL_PASSWORD)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,7}\.[A-Za-z]{2,63}")
# A phone number: an international "+..." number, or digits grouped by spaces, dashes or parentheses, or a
# Chinese mobile number. Dots are not separators, so Slack timestamps (1767225600.000100), dates and bare ids
# stay readable.
_PHONE = re.compile(
    r"(?<![\w.:/+-])"
    r"(?:\+\d[\d\s()-]{7,30}\d|\(?\d{2,4}\)?(?:[\s-]\(?\d{2,4}\)?){2,4}|1[3-9]\d{9})"
    r"(?![\w.:/-])"
)
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[\sT]\d{2}(?::\d{2})*)?")
MAX_VALUE_CHARS: Final = 8192
"""A logged string longer than this keeps its head and its tail (where a traceback names the error), and
says how much was cut, before any pattern sees it."""
_KEPT_TAIL: Final = 2048
# How far from a cut a separator is looked for, so a cut does not leave half a token or address behind.
_CUT_SLACK: Final = 64
_SEPARATOR = re.compile(r"[\s\"'<>()\[\]{},;]")


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = sum(ch.isdigit() for ch in found)
    if not 9 <= digits <= 15 or _DATE_LIKE.fullmatch(found.strip()):
        return found
    return "[phone]"


class Redactor:
    """Masks configured secrets by value, anything shaped like a token, e-mail addresses and phone numbers."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Also mask these exact values (the configured keys and tokens)."""
        for secret in secrets:
            if secret and len(secret) >= 4 and secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every sensitive part replaced, in time linear in its length."""
        text = self._mask_secrets(text)
        for pattern in _SECRET_PATTERNS:
            if pattern.groups >= 2:
                text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}[secret]", text)
            else:
                text = pattern.sub("[secret]", text)
        text = _EMAIL.sub("[email]", text)
        return _PHONE.sub(_mask_phone, text)

    def redact_value(self, value: Any) -> Any:
        """Redact strings inside nested dicts/lists/tuples; any other object (an exception, a URL) becomes
        its redacted text, since the renderer would print its repr unmasked."""
        if isinstance(value, str):
            return self.redact(self._truncate(value))
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        if value is None or isinstance(value, int | float | bool):
            return value
        return self.redact(self._truncate(repr(value) if isinstance(value, BaseException) else str(value)))

    def _truncate(self, text: str) -> str:
        """At most about :data:`MAX_VALUE_CHARS` of ``text``, configured secrets masked before the cut."""
        if len(text) <= MAX_VALUE_CHARS:
            return text
        text = self._mask_secrets(text)
        if len(text) <= MAX_VALUE_CHARS:
            return text
        head_end = MAX_VALUE_CHARS - _KEPT_TAIL
        before = list(_SEPARATOR.finditer(text, head_end - _CUT_SLACK, head_end))
        if before:
            head_end = before[-1].start()
        tail_start = len(text) - _KEPT_TAIL
        after = _SEPARATOR.search(text, tail_start, tail_start + _CUT_SLACK)
        if after is not None:
            tail_start = after.end()
        return f"{text[:head_end]}…[truncated {tail_start - head_end} chars]…{text[tail_start:]}"

    def _mask_secrets(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[secret]")
        return text

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self.redact_value(value) if not isinstance(value, int | float | bool) else value
        return event_dict


REDACTOR = Redactor()


def configure_logging(
    level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging through the redactor to one handler on ``stream`` (stderr).

    ``fmt`` is ``json`` (one object per line), ``console`` (for people) or ``auto``: console when the
    stream is a terminal, JSON otherwise.
    """
    REDACTOR.add_secrets(secrets)
    if fmt == "auto":
        fmt = "console" if (stream or sys.stderr).isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            REDACTOR,
            renderer,
        ],
    )
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_third_party(level)


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the one it was built with (a
    replaced stderr, e.g. one that was captured and closed since, must not break logging)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


# httpx logs every request URL at INFO, and Telegram's URLs carry the bot token. slack_bolt logs the whole
# body of a request it refuses at INFO, slack_sdk and python-telegram-bot log payloads at DEBUG, aiohttp's
# access log names every path: what an unauthenticated client sent must not reach the log.
_QUIET = (
    "httpx",
    "httpcore",
    "telegram",
    "aiosqlite",
    "asyncio",
    "slack_bolt",
    "slack_sdk",
    "aiohttp.access",
    # Alembic says which plugins and migrations it runs at INFO on every start: nothing an operator acts on.
    "alembic",
)
EXHAUSTION_INTERVAL_S = 60.0
"""At most one "out of descriptors" line per interval: asyncio logs one per failed accept."""


class _OncePerInterval(logging.Filter):
    """Lets one record whose message starts with ``prefix`` through per interval, without its traceback."""

    def __init__(self, prefix: str, interval: float) -> None:
        super().__init__()
        self._prefix = prefix
        self._interval = interval
        self._next = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self._prefix):
            return True
        now = time.monotonic()
        if now < self._next:
            self._dropped += 1
            return False
        self._next = now + self._interval
        error = record.exc_info[1] if record.exc_info else None
        record.msg = f"{self._prefix} ({error}; {self._dropped} more since the last line)"
        record.args, record.exc_info, record.exc_text = None, None, None
        self._dropped = 0
        return True


def quiet_third_party(level: str) -> None:
    """Third-party loggers at WARNING or above; descriptor exhaustion logged once per interval."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OncePerInterval) for f in asyncio_log.filters):
        asyncio_log.addFilter(
            _OncePerInterval("socket.accept() out of system resource", EXHAUSTION_INTERVAL_S)
        )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named after its module."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger

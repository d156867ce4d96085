"""Typed settings: YAML with ``${VAR}`` / ``${VAR:-default}`` substitution, durations, clear errors."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.observability.logs import URL_PASSWORD
from bot.observability.url_passwords import UrlPassword, database_password, storage_password


class ConfigError(Exception):
    """A configuration problem, described in one line that names the key (and env var) at fault."""


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Beyond any sensible setting, and far below what timedelta can hold.
_LONGEST_DURATION: Final = timedelta(days=36_500)


def parse_duration(value: object) -> timedelta:
    """Parse ``500ms``, ``90s``, ``15m``, ``24h``, ``7d`` (or a bare number of seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; use a number with ms, s, m, h or d (e.g. 90s, 24h)"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not math.isfinite(seconds) or seconds > _LONGEST_DURATION.total_seconds():
        raise ValueError(f"a duration must be at most {format_duration(_LONGEST_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact rendering of a duration in the config notation."""
    total_ms = round(value.total_seconds() * 1000)
    for unit, factor_ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms and total_ms % factor_ms == 0:
            return f"{total_ms // factor_ms}{unit}"
    return f"{total_ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


_SIZE_UNITS: Final = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """A byte size from config: an integer of bytes or a string like ``512KB`` or ``20MB`` (1 KB = 1024 B)."""
    if isinstance(value, bool):
        raise ValueError("must be a size like 512KB or 20MB")
    if isinstance(value, int):
        number, unit = value, "B"
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = int(match.group(1)), (match.group(2) or "B").upper()
    else:
        raise ValueError("must be a size like 512KB or 20MB")
    size = number * _SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


def format_size(value: int) -> str:
    """The shortest exact rendering of a byte size in the config notation."""
    for unit in ("GB", "MB", "KB"):
        if value % _SIZE_UNITS[unit] == 0:
            return f"{value // _SIZE_UNITS[unit]}{unit}"
    return f"{value}B"


ByteSize = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
"""A size in bytes, written in config as ``512KB``, ``20MB`` or a plain number of bytes."""


def _within(low: timedelta, high: timedelta = _LONGEST_DURATION, why: str = "") -> AfterValidator:
    """A duration range; ``why`` explains the lower bound where breaking it breaks a promise."""

    def check(value: timedelta) -> timedelta:
        if value < low:
            reason = f" ({why})" if why else ""
            raise ValueError(f"must be at least {format_duration(low)}{reason}")
        if value > high:
            raise ValueError(f"must be at most {format_duration(high)}")
        return value

    return AfterValidator(check)


def _strict_flag(value: object) -> object:
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false (unquoted)")


def _auto_or_flag(value: object) -> object:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError("must be auto, true or false (unquoted)")


Flag = Annotated[bool, BeforeValidator(_strict_flag)]
"""A yes/no setting: only YAML true or false, never a string or a number."""

_MS, _SECOND, _MINUTE, _HOUR, _DAY = (
    timedelta(milliseconds=1),
    timedelta(seconds=1),
    timedelta(minutes=1),
    timedelta(hours=1),
    timedelta(days=1),
)
# Telegram keeps an update it could not deliver for 24 h and may deliver it again within that time; Slack
# retries an event for minutes. The inbox row of an event is what makes its redelivery a duplicate.
_REDELIVERY_WINDOW: Final = _DAY
_REDELIVERY_REASON: Final = (
    "the inbox rows that make a redelivered event a duplicate live this long; Telegram redelivers for 24h"
)


def _empty_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


Secret = Annotated[SecretStr | None, BeforeValidator(_empty_to_none)]
OptionalStr = Annotated[str | None, BeforeValidator(_empty_to_none)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationSettings(_Section):
    """Gemini generationConfig."""

    temperature: float | None = Field(default=0.7, ge=0, le=2)
    top_p: float | None = Field(default=0.9, ge=0, le=1)
    max_output_tokens: int | None = Field(default=2048, ge=1)
    thinking_budget: int | None = Field(default=None, ge=-1)
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = None
    show_thoughts: Flag = False

    @model_validator(mode="after")
    def _one_thinking_setting(self) -> GenerationSettings:
        if self.thinking_budget is not None and self.thinking_level is not None:
            raise _KeyProblem(
                "gemini.generation.thinking_level", "cannot be set together with thinking_budget (use one)"
            )
        return self


class ToolSettings(_Section):
    """Gemini's built-in tools (each billed by Google beyond its free tier)."""

    google_search: Flag = False
    url_context: Flag = False
    code_execution: Flag = False

    def enabled(self) -> frozenset[str]:
        """The names of the tools switched on."""
        return frozenset(name for name, on in self.model_dump().items() if on)


class RetrySettings(_Section):
    """Bounds of the retry/fallback policy."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    initial_backoff: Annotated[Duration, _within(_MS, _MINUTE)] = timedelta(seconds=1)
    max_backoff: Annotated[Duration, _within(_MS, _HOUR)] = timedelta(seconds=30)
    max_wait: Annotated[Duration, _within(timedelta(0), _HOUR)] = timedelta(seconds=20)
    deadline: Annotated[Duration, _within(100 * _MS, _HOUR)] = timedelta(seconds=90)
    breaker_threshold: int = Field(default=5, ge=0)
    breaker_cooldown: Annotated[Duration, _within(100 * _MS, _HOUR)] = timedelta(seconds=30)


class QuotaSettings(_Section):
    """Local caps on Gemini HTTP requests; 0 means no cap."""

    requests_per_minute: int = Field(default=0, ge=0)
    requests_per_day: int = Field(default=0, ge=0)
    requests_per_month: int = Field(default=100_000, ge=0)


class GeminiSettings(_Section):
    """The ``gemini:`` section."""

    api_key: Secret = None
    base_url: str = "https://generativelanguage.googleapis.com"
    model: str = Field(default="gemini-2.5-flash", min_length=1)
    fallback_models: list[str] = Field(default_factory=list)
    fallback_base_urls: list[str] = Field(default_factory=list)
    stream: Flag = True
    timeout: Annotated[Duration, _within(_SECOND, 10 * _MINUTE)] = timedelta(seconds=60)
    connect_timeout: Annotated[Duration, _within(100 * _MS, 5 * _MINUTE)] = timedelta(seconds=10)
    read_timeout: Annotated[Duration, _within(100 * _MS, 10 * _MINUTE)] = timedelta(seconds=30)
    system_instruction: str = "You are a helpful assistant."
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    max_sources: int = Field(default=5, ge=1, le=20)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    admin_alert_interval: Annotated[Duration, _within(10 * _SECOND, 7 * _DAY)] = timedelta(minutes=10)

    @field_validator("base_url", "fallback_base_urls")
    @classmethod
    def _http_url(cls, value: str | list[str]) -> str | list[str]:
        for url in [value] if isinstance(value, str) else value:
            if not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value


class ConversationSettings(_Section):
    """The ``conversation:`` section."""

    max_turns: int = Field(default=10, ge=0, le=1000)
    max_context_chars: int = Field(default=24_000, ge=100)
    max_message_chars: int = Field(default=8000, ge=1)
    language: Literal["en", "zh"] = "en"
    # Exchanges leaving the window are folded into a running summary by a separate Gemini call.
    summarize: Flag = False
    summary_model: OptionalStr = None
    summary_chars: int = Field(default=1500, ge=200, le=8000)


class MediaSettings(_Section):
    """The ``media:`` section: files users send (voice notes, audio, video, documents, images)."""

    enabled: Flag = True
    # Telegram's Bot API serves bots files of at most 20 MB.
    max_bytes: ByteSize = 20 * 1024**2
    # Up to this size a file goes inline in the request; larger ones through the Files API.
    inline_max_bytes: ByteSize = 4 * 1024**2
    max_files_per_message: int = Field(default=10, ge=1, le=100)
    # Follow-ups may refer to files sent earlier while that exchange is in the context window.
    keep_in_context: Flag = True


class ModelsSettings(_Section):
    """The ``models:`` section: what a chat may switch to with /model."""

    allowed: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


PERSONA_NAME = r"^[a-z0-9_-]{1,32}$"


class PersonaSettings(_Section):
    """One ``personas:`` entry: a preset a chat may pick with /persona."""

    system_instruction: str = Field(min_length=1, max_length=8000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    description: str = ""


class BudgetSettings(_Section):
    """The ``budgets:`` section: Gemini tokens per user; 0 means no budget."""

    tokens_per_user_per_day: int = Field(default=0, ge=0)
    tokens_per_user_per_month: int = Field(default=0, ge=0)


class StorageSettings(_Section):
    """The ``storage:`` section."""

    url: str = "sqlite+aiosqlite:///./data/gembot.db"
    retention: Annotated[Duration, _within(_MINUTE)] = timedelta(hours=24)
    audit_retention: Annotated[Duration, _within(_HOUR)] = timedelta(days=90)
    stats_retention: Annotated[Duration, _within(_REDELIVERY_WINDOW, why=_REDELIVERY_REASON)] = timedelta(
        days=35
    )
    # At most an hour, so text is never kept much beyond `retention`.
    purge_interval: Annotated[Duration, _within(10 * _SECOND, _HOUR)] = timedelta(minutes=10)
    # PostgreSQL: connections a replica may open to wait for conversations another replica is answering
    # (bot.sequencer; the uncontended locks share one connection).
    lock_connections: int = Field(default=16, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db")
        database_password(value)
        return value


class RateLimitSettings(_Section):
    """The ``rate_limits:`` section (``limits`` notation)."""

    storage: str = "memory://"
    per_user: str = "10/minute;200/day"
    per_chat: str = "30/minute"
    key_prefix: str = "gembot"

    @field_validator("per_user", "per_chat")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not in `limits` notation (e.g. 10/minute;200/day)") from exc
        return value

    @field_validator("storage")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "redis+")):
            raise ValueError("use memory:// or redis://host:port")
        storage_password(value)
        return value


class FilterSettings(_Section):
    """The ``filter:`` section."""

    words: list[str] = Field(default_factory=list)
    words_file: OptionalStr = None
    allow: list[str] = Field(default_factory=list)
    action: Literal["block", "mask"] = "block"
    check_replies: Flag = True
    reload_interval: Annotated[Duration, _within(10 * _MS, _HOUR)] = timedelta(seconds=5)

    @field_validator("words", "allow")
    @classmethod
    def _matchable_words(cls, value: list[str]) -> list[str]:
        from bot.guards.words import never_matching

        problem = never_matching(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("words_file")
    @classmethod
    def _readable_file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from bot.guards.words import never_matching, read_words_file

        try:
            Path(value).read_bytes().decode("utf-8")
        except OSError:
            raise ValueError(f"{value!r} is not a readable file") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{value!r} is not UTF-8 text (byte {exc.start})") from None
        problem = never_matching(read_words_file(value))
        if problem is not None:
            raise ValueError(f"{value!r}: {problem}")
        return value


class OutboundTelegramLimits(_Section):
    """Outbound flood control towards Telegram; 0 turns one off."""

    global_per_second: float = Field(default=30, ge=0)
    per_chat_per_second: float = Field(default=1, ge=0)
    per_group_per_minute: float = Field(default=20, ge=0)


AutoBool = Annotated[Literal["auto", True, False], BeforeValidator(_auto_or_flag)]


class TelegramSettings(_Section):
    """The ``telegram:`` section."""

    enabled: AutoBool = "auto"
    token: Secret = None
    base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: OptionalStr = None
    webhook_secret: Secret = None
    admin_ids: list[int] = Field(default_factory=list)
    allowed_chat_ids: list[int] = Field(default_factory=list)
    group_trigger: Literal["mention", "all"] = "mention"
    rate_limit: OutboundTelegramLimits = Field(default_factory=OutboundTelegramLimits)
    drop_pending_updates: Flag = False
    stream_interval: Annotated[Duration, _within(50 * _MS, _MINUTE)] = timedelta(seconds=1)
    draft_streaming: Flag = True
    # Older keys, still read so that configs naming them load; ignored (check-config says so):
    # media.max_bytes limits every file, and a file without a caption is sent to Gemini as it is.
    photo_max_bytes: int | None = Field(default=None, ge=1, exclude=True)
    photo_prompt: str | None = Field(default=None, exclude=True)
    # Answer inline queries (@bot question in any chat); inline mode must also be enabled with BotFather.
    inline: Flag = False

    @property
    def is_enabled(self) -> bool:
        """Whether the adapter runs (``auto``: when the token is set)."""
        if self.enabled == "auto":
            return self.token is not None
        return bool(self.enabled)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token_charset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value


class SuggestedPrompt(_Section):
    """One prompt offered in Slack's assistant panel: the button's title and the message it sends."""

    title: str = Field(min_length=1, max_length=75)
    message: str = Field(min_length=1, max_length=4000)


class AssistantSettings(_Section):
    """The ``slack.assistant:`` section: Slack's assistant panel."""

    # Empty: the built-in defaults.
    suggested_prompts: list[SuggestedPrompt] = Field(default_factory=list, max_length=4)


class SlackSettings(_Section):
    """The ``slack:`` section."""

    enabled: AutoBool = "auto"
    bot_token: Secret = None
    app_token: Secret = None
    signing_secret: Secret = None
    mode: Literal["socket", "http"] = "socket"
    base_url: str = "https://slack.com/api/"
    slash_command: str = Field(default="/gembot", pattern=r"^/[a-z0-9_-]{1,31}$")
    admin_ids: list[str] = Field(default_factory=list)
    allowed_channel_ids: list[str] = Field(default_factory=list)
    stream: Flag = True
    update_interval: Annotated[Duration, _within(50 * _MS, _MINUTE)] = timedelta(seconds=1)
    max_retries: int = Field(default=4, ge=0, le=20)
    # Events and commands of another workspace or app are acknowledged and ignored; unset team_id = the
    # bot token's workspace (auth.test), unset app_id = any app.
    team_id: OptionalStr = None
    app_id: OptionalStr = None
    assistant: AssistantSettings = Field(default_factory=AssistantSettings)

    @property
    def is_enabled(self) -> bool:
        """Whether the adapter runs (``auto``: bot token and an app token or signing secret set)."""
        if self.enabled == "auto":
            return self.bot_token is not None and (
                self.app_token is not None or self.signing_secret is not None
            )
        return bool(self.enabled)


class ServerSettings(_Section):
    """The ``server:`` section."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # On SIGTERM: stop taking events (webhooks answer 503, polling stops), finish what is in flight
    # within this deadline, then exit 0.
    shutdown_grace: Annotated[Duration, _within(_SECOND, _HOUR)] = timedelta(seconds=20)
    # A request's headers, and then its body, must each arrive within this (bot/http_edge.py).
    read_timeout: Annotated[Duration, _within(_SECOND, 10 * _MINUTE)] = timedelta(seconds=10)
    # A connection with no request after its last response is closed after this.
    keepalive_timeout: Annotated[Duration, _within(_SECOND, _HOUR)] = timedelta(seconds=75)


ADMIN_TOKEN_MIN_CHARS = 32


class AdminWebSettings(_Section):
    """The ``admin_web:`` section: the admin page on the HTTP server (bot.admin_web)."""

    enabled: bool = False
    token: Secret = None
    path: str = Field(default="/admin", pattern=r"^/[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")

    @field_validator("path")
    @classmethod
    def _not_a_server_route(cls, value: str) -> str:
        if value in ("/healthz", "/readyz", "/metrics"):
            raise ValueError(f"{value} is one of the server's own routes")
        return value


class LoggingSettings(_Section):
    """The ``logging:`` section."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # auto: human-readable when stderr is a terminal, JSON otherwise.
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Settings(_Section):
    """Every setting of gembot; see config.yaml for the meaning of each key."""

    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    admin_web: AdminWebSettings = Field(default_factory=AdminWebSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    personas: dict[Annotated[str, Field(pattern=PERSONA_NAME)], PersonaSettings] = Field(default_factory=dict)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)

    @property
    def chat_models(self) -> list[str]:
        """The models a chat may use: ``gemini.model`` first, then ``models.allowed``."""
        return list(dict.fromkeys([self.gemini.model, *self.models.allowed]))

    @model_validator(mode="after")
    def _known_model_labels(self) -> Settings:
        for name in self.models.labels:
            if name not in self.chat_models:
                raise _KeyProblem(
                    f"models.labels.{name}",
                    "names a model that is neither gemini.model nor in models.allowed",
                )
        for name in ("custom", "off"):
            if name in self.personas:
                raise _KeyProblem(
                    f"personas.{name}", "is a word of /persona itself: name the persona otherwise"
                )
        return self

    @model_validator(mode="after")
    def _platform_requirements(self) -> Settings:
        tg, sl = self.telegram, self.slack
        if tg.enabled is True and tg.token is None:
            raise _KeyProblem("telegram.token", "is required when telegram.enabled is true")
        if tg.is_enabled and tg.mode == "webhook":
            if tg.webhook_secret is None:
                raise _KeyProblem("telegram.webhook_secret", "is required in webhook mode")
            if tg.webhook_url is None:
                raise _KeyProblem("telegram.webhook_url", "is required in webhook mode")
        if sl.enabled is True and sl.bot_token is None:
            raise _KeyProblem("slack.bot_token", "is required when slack.enabled is true")
        if sl.is_enabled and sl.mode == "socket" and sl.app_token is None:
            raise _KeyProblem("slack.app_token", "is required in socket mode (an xapp- token)")
        if sl.is_enabled and sl.mode == "http" and sl.signing_secret is None:
            raise _KeyProblem("slack.signing_secret", "is required in http mode")
        admin = self.admin_web
        if admin.enabled and (
            admin.token is None or len(admin.token.get_secret_value()) < ADMIN_TOKEN_MIN_CHARS
        ):
            raise _KeyProblem(
                "admin_web.token",
                f"is required when admin_web.enabled is true (at least {ADMIN_TOKEN_MIN_CHARS} characters)",
            )
        return self

    def secret_values(self) -> list[str]:
        """Every configured secret's value, for log redaction."""
        found = [
            self.gemini.api_key,
            self.telegram.token,
            self.telegram.webhook_secret,
            self.slack.bot_token,
            self.slack.app_token,
            self.slack.signing_secret,
            self.admin_web.token,
        ]
        values = [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
        # Passwords inside the database and Redis URLs are secrets too, in every spelling.
        for password in self.url_passwords():
            if password is not None:
                values += password.secret_forms()
        return values

    def url_passwords(self) -> tuple[UrlPassword | None, UrlPassword | None]:
        """The passwords in ``storage.url`` and ``rate_limits.storage``, as their clients read them."""
        return database_password(self.storage.url), storage_password(self.rate_limits.storage)


class _KeyProblem(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


# Secrets fall back to their documented environment variable when the file does not name them.
_SECRET_DEFAULTS: dict[tuple[str, str], str] = {
    ("gemini", "api_key"): "${GEMINI_API_KEY}",
    ("telegram", "token"): "${TELEGRAM_BOT_TOKEN}",
    ("slack", "bot_token"): "${SLACK_BOT_TOKEN}",
    ("slack", "app_token"): "${SLACK_APP_TOKEN}",
    ("slack", "signing_secret"): "${SLACK_SIGNING_SECRET}",
    ("admin_web", "token"): "${GEMBOT_ADMIN_TOKEN}",
}

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(node: Any, env: Mapping[str, str], path: tuple[str, ...], sources: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*path, str(k)), sources) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*path, str(i)), sources) for i, v in enumerate(node)]
    if isinstance(node, str):
        names = [m.group(1) for m in _VAR_RE.finditer(node)]
        if names:
            sources[".".join(path)] = ", ".join(names)

        def replace(match: re.Match[str]) -> str:
            value = env.get(match.group(1))
            if value is None or value == "":
                return match.group(2) or ""
            return value

        replaced = _VAR_RE.sub(replace, node)
        # A whole-value substitution is parsed as YAML so `${PORT:-8080}` gives an int, `${X:-true}` a bool.
        if names and _VAR_RE.fullmatch(node.strip()) and replaced.strip():
            try:
                parsed = yaml.safe_load(replaced)
            except yaml.YAMLError:
                return replaced
            if isinstance(parsed, int | float | bool) and not path[-1].endswith(("token", "key", "secret")):
                return parsed
        return replaced
    return node


_REQUIRED_SECRET = ("gemini.api_key",)


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    """``--config`` > ``GEMBOT_CONFIG`` > ``./config.yaml``; the flag says whether the file must exist."""
    if explicit:
        return Path(explicit), True
    if env.get("GEMBOT_CONFIG"):
        return Path(env["GEMBOT_CONFIG"]), True
    return Path("config.yaml"), False


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, substitute and validate the config; raise ConfigError with one clear line on any problem."""
    env = os.environ if env is None else env
    file_path, must_exist = resolve_config_path(str(path) if path is not None else None, env)
    raw: Any = {}
    if file_path.exists():
        try:
            raw = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file_path}: cannot be read ({exc.__class__.__name__})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {file_path}: not valid YAML{where}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {file_path}: the top level must be a mapping of sections")
    elif must_exist:
        raise ConfigError(f"config file {file_path}: not found")
    return settings_from_mapping(raw, env)


def settings_from_mapping(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate an already-parsed config mapping (see :func:`load_settings`)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for (section, key), reference in _SECRET_DEFAULTS.items():
        block = merged.setdefault(section, {})
        if isinstance(block, dict) and key not in block:
            block[key] = reference
    sources: dict[str, str] = {}
    try:
        substituted = _substitute(merged, env, (), sources)
    except RecursionError:
        # A YAML alias that contains itself (`&a [*a]`) nests without end.
        raise ConfigError("config: a YAML alias refers to itself (an endlessly nested value)") from None
    try:
        settings = Settings.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None
    for key in _REQUIRED_SECRET:
        section, name = key.split(".")
        if getattr(getattr(settings, section), name) is None:
            raise ConfigError(_missing_secret(key, sources))
    return settings


def _missing_secret(key: str, sources: Mapping[str, str]) -> str:
    var = sources.get(key)
    if var:
        return f"{key} is required but empty: set the environment variable {var}"
    return f"{key} is required but empty"


def _describe(exc: ValidationError, sources: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _KeyProblem):
        var = sources.get(ctx_error.key)
        hint = f" (set the environment variable {var})" if var else ""
        return f"{ctx_error.key} {ctx_error.problem}{hint}"
    loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal["))]
    key = ".".join(loc) or "config"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; config.yaml lists every key)"
    message = str(error["msg"]).removeprefix("Value error, ")
    var = sources.get(key)
    origin = f" (from the environment variable {var})" if var else ""
    return f"{key}: {message}{origin}"


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data with every secret masked (for ``gembot check-config``)."""
    data: dict[str, Any] = settings.model_dump(mode="json")

    def mask(node: Any, original: Any) -> Any:
        if isinstance(original, SecretStr):
            return "********"
        if isinstance(original, BaseModel):
            return {k: mask(node[k], getattr(original, k)) for k in node}
        if isinstance(node, str) and "://" in node:
            return URL_PASSWORD.sub(r"\1\2********", node)
        return node

    masked: dict[str, Any] = mask(data, settings)
    database, storage = settings.url_passwords()
    if database is not None:
        masked["storage"]["url"] = database.masked()
    if storage is not None:
        masked["rate_limits"]["storage"] = storage.masked()
    return masked


_LOOPBACK_HOSTS = ("localhost", "::1")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    host = host.strip("[]").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost")


def config_warnings(settings: Settings) -> list[str]:
    """Risky but valid settings ``gembot check-config`` points out (one line each)."""
    warnings = []
    if settings.telegram.photo_max_bytes is not None:
        warnings.append("telegram.photo_max_bytes is no longer used: media.max_bytes limits every file")
    if settings.telegram.photo_prompt is not None:
        warnings.append(
            "telegram.photo_prompt is no longer used: a photo without a caption is sent to Gemini as it is"
        )
    if settings.admin_web.enabled and not is_loopback_host(settings.server.host):
        warnings.append(
            f"admin_web is enabled and server.host {settings.server.host} is not loopback: serve "
            f"{settings.admin_web.path} only behind https (a reverse proxy terminating TLS), or the token "
            "and the session cookie cross the network in clear"
        )
    return warnings

"""Config loading: substitution, durations, unknown keys, secrets and the one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.config import (
    ConfigError,
    config_warnings,
    format_duration,
    format_size,
    load_settings,
    masked_dump,
    parse_duration,
    parse_size,
    settings_from_mapping,
)

ENV = {"GEMINI_API_KEY": "AIzaSyTestKey0000000000000000000000000"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_has_a_default_but_the_secret() -> None:
    settings = settings_from_mapping({}, ENV)
    assert settings.gemini.api_key is not None
    assert settings.gemini.api_key.get_secret_value() == ENV["GEMINI_API_KEY"]
    assert settings.conversation.max_turns == 10
    assert settings.storage.retention == timedelta(hours=24)
    assert settings.gemini.quota.requests_per_month == 100_000
    assert not settings.telegram.is_enabled and not settings.slack.is_enabled


def test_shipped_config_yaml_is_valid_and_matches_defaults() -> None:
    shipped = load_settings(Path(__file__).parents[2] / "config.yaml", ENV)
    assert shipped == settings_from_mapping({}, ENV)


def test_substitution_with_defaults_and_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gemini:\n  model: ${MODEL:-gemini-2.5-pro}\n  system_instruction: 'Hi ${NAME}!'\n"
        "server:\n  port: ${PORT:-9000}\nconversation:\n  max_turns: ${TURNS}\n",
    )
    settings = load_settings(path, {**ENV, "TURNS": "3", "NAME": "Ann"})
    assert settings.gemini.model == "gemini-2.5-pro"
    assert settings.gemini.system_instruction == "Hi Ann!"
    assert settings.server.port == 9000
    assert settings.conversation.max_turns == 3


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("1.5s", 1.5), (3, 3)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_format_round_trips(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512KB", 512 * 1024),
        ("20MB", 20 * 1024**2),
        ("1gb", 1024**3),
        (" 7 B ", 7),
        ("4096", 4096),
        (300, 300),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@given(st.integers(min_value=1, max_value=10**12))
def test_size_format_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        ("gemini:\n  modle: x\n", ENV, "gemini.modle: unknown key"),
        ("gemnii: {}\n", ENV, "gemnii: unknown key"),
        ("storage:\n  retention: forever\n", ENV, "storage.retention: 'forever' is not a duration"),
        ("server:\n  port: ${PORT}\n", {**ENV, "PORT": "http"}, "(from the environment variable PORT)"),
        ("{}\n", {}, "gemini.api_key is required but empty: set the environment variable GEMINI_API_KEY"),
        ("gemini:\n  api_key: ${MY_KEY}\n", {}, "set the environment variable MY_KEY"),
        ("rate_limits:\n  per_user: lots\n", ENV, "rate_limits.per_user: 'lots' is not in `limits` notation"),
        (
            "telegram:\n  token: 1:abc\n  mode: webhook\n",
            ENV,
            "telegram.webhook_secret is required in webhook mode",
        ),
        ("slack:\n  enabled: true\n", ENV, "slack.bot_token is required when slack.enabled is true"),
        ("conversation:\n  language: fr\n", ENV, "conversation.language:"),
        ("gemini: [1, 2\n", ENV, "not valid YAML at line"),
        ("- a\n- b\n", ENV, "the top level must be a mapping"),
        (
            "gemini:\n  generation:\n    thinking_budget: 512\n    thinking_level: low\n",
            ENV,
            "gemini.generation.thinking_level cannot be set together with thinking_budget",
        ),
        ("gemini:\n  generation:\n    thinking_level: extreme\n", ENV, "gemini.generation.thinking_level:"),
        (
            "gemini:\n  tools:\n    google_search: 1\n",
            ENV,
            "gemini.tools.google_search: must be true or false",
        ),
        ("gemini:\n  max_sources: 0\n", ENV, "gemini.max_sources:"),
        (
            "models:\n  labels: {gemini-9: Nine}\n",
            ENV,
            "models.labels.gemini-9 names a model that is neither gemini.model nor in models.allowed",
        ),
        ("personas:\n  custom: {system_instruction: x}\n", ENV, "personas.custom is a word of /persona"),
        ("personas:\n  Pirate!: {system_instruction: x}\n", ENV, "personas.Pirate!"),
        ("personas:\n  pirate: {temperature: 1}\n", ENV, "personas.pirate.system_instruction"),
        ("budgets:\n  tokens_per_user_per_day: -1\n", ENV, "budgets.tokens_per_user_per_day:"),
        ("media:\n  max_bytes: 20 megabytes\n", ENV, "media.max_bytes: must be a size like 512KB or 20MB"),
        ("media:\n  inline_max_bytes: 0KB\n", ENV, "media.inline_max_bytes: must be more than 0 bytes"),
        ("media:\n  max_files_per_message: 0\n", ENV, "media.max_files_per_message:"),
        (
            "slack:\n  assistant: {suggested_prompts: [{title: x}]}\n",
            ENV,
            "slack.assistant.suggested_prompts",
        ),
    ],
)
def test_errors_are_one_clear_line(tmp_path: Path, yaml_text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, yaml_text), env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_platform_auto_enable() -> None:
    settings = settings_from_mapping({}, {**ENV, "TELEGRAM_BOT_TOKEN": "123:abc"})
    assert settings.telegram.is_enabled
    slack = settings_from_mapping(
        {"slack": {"mode": "http"}}, {**ENV, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3"}
    )
    assert slack.slack.is_enabled


def test_config_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "gemini:\n  model: from-cwd\n")
    other = tmp_path / "other.yaml"
    other.write_text("gemini:\n  model: from-env\n", encoding="utf-8")
    assert load_settings(None, ENV).gemini.model == "from-cwd"
    assert load_settings(None, {**ENV, "GEMBOT_CONFIG": str(other)}).gemini.model == "from-env"
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml", ENV)


def test_check_config_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "super-secret-gemini-key")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-secret-token")
    monkeypatch.setenv("DB_PASSWORD", "pg-pa55word")
    path = write(
        tmp_path,
        "storage:\n  retention: 12h\n  url: postgresql+asyncpg://gembot:${DB_PASSWORD}@db/gembot\n"
        "rate_limits:\n  storage: redis://:redis-pa55@cache:6379/0\n",
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "super-secret" not in out and "telegram-secret" not in out
    assert "pa55" not in out  # the passwords inside the database and Redis URLs too
    assert "api_key: '********'" in out
    assert "url: postgresql+asyncpg://gembot:********@db/gembot" in out
    assert "retention: 12h" in out
    settings = load_settings(path, {**ENV, "DB_PASSWORD": "pg-pa55word"})
    assert {"pg-pa55word", "redis-pa55"} <= set(settings.secret_values())  # redacted from logs by value


def test_check_config_refuses_both_thinking_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    path = write(tmp_path, "gemini:\n  generation:\n    thinking_budget: 0\n    thinking_level: high\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "thinking_level cannot be set together with thinking_budget" in capsys.readouterr().err


def test_check_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "gemini:\n  temperature: 3\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gembot: config error: gemini.temperature: unknown key")


def test_words_file_must_exist_and_be_utf8(tmp_path: Path) -> None:
    missing = tmp_path / "none.txt"
    with pytest.raises(ConfigError, match=r"filter.words_file: .* is not a readable file"):
        settings_from_mapping({"filter": {"words_file": str(missing)}}, ENV)
    latin1 = tmp_path / "words.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"filter.words_file: .* is not UTF-8 text \(byte 3\)"):
        settings_from_mapping({"filter": {"words_file": str(latin1)}}, ENV)


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``gembot check-config`` as its own process, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
        check=False,
    )


def test_check_config_masks_url_passwords_holding_slashes_and_encoded_characters(tmp_path: Path) -> None:
    """SQLAlchemy keeps a raw ``/`` or ``:`` in the password; the Redis client needs it percent-encoded."""
    path = write(
        tmp_path,
        "storage:\n  url: postgresql+asyncpg://gembot:${DB_PASSWORD}@db:5432/gembot\n"
        "rate_limits:\n  storage: redis://:r3d%2Fis%40pw@cache:6379/0\n",
    )
    done = check_config(path, {**ENV, "DB_PASSWORD": "pa/ss:w0rd"})
    assert done.returncode == 0, done.stderr
    for leaked in ("pa/ss", "w0rd", "r3d", "pw@"):
        assert leaked not in done.stdout
    assert "url: postgresql+asyncpg://gembot:********@db:5432/gembot" in done.stdout
    assert "storage: redis://:********@cache:6379/0" in done.stdout
    settings = load_settings(path, {**ENV, "DB_PASSWORD": "pa/ss:w0rd"})
    # Every spelling a driver or a log line may show: as written, decoded, encoded.
    assert {"pa/ss:w0rd", "pa%2Fss%3Aw0rd", "r3d%2Fis%40pw", "r3d/is@pw"} <= set(settings.secret_values())


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "storage:\n  url: postgresql+asyncpg://gembot:p@ss-w0rd@db/gembot\n",
            "storage.url: an '@' in the password must be written %40",
        ),
        (
            "rate_limits:\n  storage: redis://:pa/ss-w0rd@cache:6379/0\n",
            "rate_limits.storage: a '/', '?' or '#' in the password must be written %2F, %3F or %23",
        ),
    ],
)
def test_a_url_its_client_would_split_inside_the_password_is_refused(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    """Else the driver takes the rest of the password for the host (or path) and shows it in errors."""
    done = check_config(write(tmp_path, yaml_text), ENV)
    assert done.returncode == 2
    assert done.stderr.startswith(f"gembot: config error: {message}")
    assert done.stderr.count("\n") == 1 and "w0rd" not in done.stderr


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("storage:\n  purge_interval: 0s\n", "storage.purge_interval: must be at least 10s"),
        ("storage:\n  purge_interval: 1d\n", "storage.purge_interval: must be at most 1h"),
        ("storage:\n  retention: 0s\n", "storage.retention: must be at least 1m"),
        ("storage:\n  audit_retention: 0s\n", "storage.audit_retention: must be at least 1h"),
        ("gemini:\n  timeout: 0s\n", "gemini.timeout: must be at least 1s"),
        ("gemini:\n  read_timeout: 0s\n", "gemini.read_timeout: must be at least 100ms"),
        ("gemini:\n  connect_timeout: 0s\n", "gemini.connect_timeout: must be at least 100ms"),
        ("gemini:\n  retry:\n    deadline: 0s\n", "gemini.retry.deadline: must be at least 100ms"),
        (
            "gemini:\n  retry:\n    initial_backoff: 0s\n",
            "gemini.retry.initial_backoff: must be at least 1ms",
        ),
        (
            "gemini:\n  retry:\n    breaker_cooldown: 2h\n",
            "gemini.retry.breaker_cooldown: must be at most 1h",
        ),
        ("gemini:\n  admin_alert_interval: 0s\n", "gemini.admin_alert_interval: must be at least 10s"),
        ("telegram:\n  stream_interval: 0s\n", "telegram.stream_interval: must be at least 50ms"),
        ("slack:\n  update_interval: 0s\n", "slack.update_interval: must be at least 50ms"),
        ("filter:\n  reload_interval: 0s\n", "filter.reload_interval: must be at least 10ms"),
        ("server:\n  shutdown_grace: 0s\n", "server.shutdown_grace: must be at least 1s"),
        (
            "gemini:\n  timeout: 99999999999999999999999\n",
            "gemini.timeout: a duration must be at most 36500d",
        ),
        ("gemini:\n  stream: 'yes'\n", "gemini.stream: must be true or false (unquoted)"),
        ("gemini:\n  stream: 1\n", "gemini.stream: must be true or false (unquoted)"),
        ("slack:\n  stream: 'true'\n", "slack.stream: must be true or false (unquoted)"),
        ("filter:\n  check_replies: 'no'\n", "filter.check_replies: must be true or false (unquoted)"),
        (
            "telegram:\n  drop_pending_updates: 0\n",
            "telegram.drop_pending_updates: must be true or false (unquoted)",
        ),
        (
            "telegram:\n  draft_streaming: 'off'\n",
            "telegram.draft_streaming: must be true or false (unquoted)",
        ),
        ("telegram:\n  enabled: 1\n", "telegram.enabled: must be auto, true or false (unquoted)"),
        ("slack:\n  enabled: 'yes'\n", "slack.enabled: must be auto, true or false (unquoted)"),
    ],
)
def test_harmful_durations_and_loose_flags_are_refused(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, yaml_text), ENV)
    assert str(caught.value) == message


def test_an_inbox_kept_shorter_than_redeliveries_arrive_is_refused_with_the_reason(tmp_path: Path) -> None:
    """The inbox row of an event is what makes its redelivery a duplicate; Telegram redelivers for 24 h."""
    done = check_config(write(tmp_path, "storage:\n  stats_retention: 12h\n"), ENV)
    assert done.returncode == 2
    assert done.stderr == (
        "gembot: config error: storage.stats_retention: must be at least 1d (the inbox rows that make a "
        "redelivered event a duplicate live this long; Telegram redelivers for 24h)\n"
    )
    assert check_config(write(tmp_path, "storage:\n  stats_retention: 24h\n"), ENV).returncode == 0


def test_flags_from_the_environment_are_still_yaml_booleans(tmp_path: Path) -> None:
    path = write(tmp_path, "gemini:\n  stream: ${STREAM:-true}\nslack:\n  stream: ${SLACK_STREAM}\n")
    settings = load_settings(path, {**ENV, "SLACK_STREAM": "false"})
    assert settings.gemini.stream is True and settings.slack.stream is False


def test_the_old_telegram_photo_keys_still_load_are_ignored_and_flagged() -> None:
    raw = {"telegram": {"photo_max_bytes": 5_000_000, "photo_prompt": "Describe this picture."}}
    settings = settings_from_mapping(raw, ENV)
    assert "photo_max_bytes" not in masked_dump(settings)["telegram"]
    assert "photo_prompt" not in masked_dump(settings)["telegram"]
    warnings = config_warnings(settings)
    assert any("telegram.photo_max_bytes is no longer used" in w for w in warnings)
    assert any("telegram.photo_prompt is no longer used" in w for w in warnings)
    assert config_warnings(settings_from_mapping({}, ENV)) == []

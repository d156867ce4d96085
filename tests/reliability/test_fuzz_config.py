"""Fuzz: config files. Promise: a bad config exits with one clear line naming
the key and what is wrong, never a traceback. Here: ``settings_from_mapping`` and ``load_settings`` give
valid ``Settings`` or raise ``ConfigError`` with a one-line message, for any mapping or file content.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, Settings, load_settings, settings_from_mapping
from tests.reliability.conftest import fuzz_settings

SECRET = "fuzz-secret-value-1234"
ENV = {"GEMINI_API_KEY": SECRET, "SET": "5s", "EMPTY": ""}
VALID: dict[str, Any] = {
    "gemini": {"api_key": "${GEMINI_API_KEY}", "retry": {"max_attempts": 3}, "generation": {"top_p": 0.5}},
    "conversation": {"max_turns": 5},
    "storage": {"url": "sqlite+aiosqlite:///./data/x.db", "retention": "24h"},
    "rate_limits": {"per_user": "10/minute", "per_chat": ""},
    "filter": {"words": ["a"], "action": "block"},
    "telegram": {"enabled": False, "rate_limit": {"global_per_second": 30}},
    "slack": {"enabled": False, "mode": "http"},
    "server": {"port": 8080},
    "logging": {"level": "INFO"},
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "500ms",
            "90s",
            "15m",
            "-1s",
            "0s",
            "1e9d",
            "5 s",
            "${SET}",
            "${UNSET}",
            "${UNSET:-7d}",
            "${EMPTY}",
            "${",
            "auto",
            "true",
            "sqlite:///x",
            "redis://h:1",
            "http://x",
            "10/minute;",
            "nan",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=5,
)
paths = st.lists(
    st.sampled_from(
        [
            "gemini",
            "retry",
            "timeout",
            "api_key",
            "generation",
            "storage",
            "retention",
            "url",
            "telegram",
            "rate_limit",
            "enabled",
            "slack",
            "mode",
            "server",
            "port",
            "logging",
            "level",
            "filter",
            "words",
            "conversation",
            "max_turns",
            "quota",
            "unknown_key",
        ]
    ),
    min_size=1,
    max_size=3,
)


def set_path(config: Any, path: list[str], value: Any) -> Any:
    if not isinstance(config, dict):
        return config
    out = dict(config)
    head, rest = path[0], path[1:]
    out[head] = set_path(out.get(head, {}), rest, value) if rest else value
    return out


def check(outcome: Settings | ConfigError) -> None:
    if isinstance(outcome, ConfigError):
        message = str(outcome)
        assert message.strip() and "\n" not in message, repr(message)
        assert "Traceback" not in message and SECRET not in message


@fuzz_settings(3)
@given(st.lists(st.tuples(paths, values), max_size=4))
def test_any_edit_of_a_valid_config_validates_or_names_the_problem(
    edits: list[tuple[list[str], Any]],
) -> None:
    config: Any = VALID
    for path, value in edits:
        config = set_path(config, path, value)
    try:
        outcome: Settings | ConfigError = settings_from_mapping(config, ENV)
    except ConfigError as exc:
        outcome = exc
    check(outcome)


@fuzz_settings(2)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
        st.sampled_from(
            [
                "gemini: [",
                "- a\n- b",
                "gemini:\n  api_key: &a [*a]",
                "!!python/object:os.system x",
                "a: b: c",
                "\t",
                "gemini: {api_key: x}\n" * 3,
                "{{{{",
                "~",
                "0",
                "'",
            ]
        ),
    ),
    st.booleans(),
)
def test_any_config_file_loads_or_names_the_problem(content: str, as_bytes: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        if as_bytes:
            path.write_bytes(content.encode("utf-8", "surrogatepass")[:200] + b"\xff\xfe")
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        try:
            outcome: Settings | ConfigError = load_settings(path, ENV)
        except ConfigError as exc:
            outcome = exc
        check(outcome)


def test_a_self_referential_yaml_alias_is_a_clear_error(tmp_path: Path) -> None:
    """Found by the fuzzer: ``_substitute`` recursed forever on ``&a [*a]`` (RecursionError, a traceback)."""
    path = tmp_path / "config.yaml"
    path.write_text("gemini:\n  fallback_models: &a [*a]\n", encoding="utf-8")
    try:
        load_settings(path, ENV)
    except ConfigError as exc:
        check(exc)

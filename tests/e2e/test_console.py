"""``gembot console`` as a real subprocess against the Gemini emulator."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import API_KEY, base_config
from tests.fakes.gemini import GeminiEmulator, Reply

pytestmark = pytest.mark.e2e


def write_config(tmp_path: Path, gemini_url: str, **extra: object) -> Path:
    config = base_config(tmp_path / "data" / "gembot.db", gemini_url)
    config["gemini"]["api_key"] = "${GEMINI_API_KEY}"
    config.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def gembot(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``python -m bot ARGS`` with ``stdin`` piped; returns (status, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_"))}
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


async def test_three_lines_carry_context_survive_restart_and_reset(
    gemini: GeminiEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gemini.base_url)
    env = {"GEMINI_API_KEY": API_KEY}
    status, out, err = await gembot(
        "console", "--config", str(config), stdin=b"first\nsecond\nthird\n", env=env
    )
    assert status == 0, err
    assert out.splitlines() == ["echo: first", "echo: second", "echo: third"]
    assert gemini.contents(2) == [
        ("user", "first"),
        ("model", "echo: first"),
        ("user", "second"),
        ("model", "echo: second"),
        ("user", "third"),
    ]
    assert gemini.requests[0].headers["x-goog-api-key"] == API_KEY

    # A second run on the same database still sends the earlier exchanges.
    status, out, err = await gembot("console", "--config", str(config), stdin=b"fourth\n", env=env)
    assert status == 0, err
    assert [text for role, text in gemini.contents(-1) if role == "user"] == [
        "first",
        "second",
        "third",
        "fourth",
    ]

    # /reset empties them; `exit` ends the session before the last line.
    status, out, err = await gembot(
        "console", "--config", str(config), stdin=b"/reset\nfresh\nexit\nnever sent\n", env=env
    )
    assert status == 0, err
    assert "starts afresh" in out
    assert gemini.contents(-1) == [("user", "fresh")]
    assert all(request.contents()[-1][1] != "never sent" for request in gemini.requests)


async def test_streamed_reply_and_exit_words(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    gemini.script(Reply(chunks=["Hello, ", "streaming ", "world."]))
    status, out, _ = await gembot(
        "console",
        "--config",
        str(config),
        stdin="hi\n退出\nignored\n".encode(),
        env={"GEMINI_API_KEY": API_KEY},
    )
    assert status == 0
    assert out == "Hello, streaming world.\n"
    assert len(gemini.requests) == 1


async def test_bad_input_gets_clear_answers(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    stdin = b"\n" + b"\xff\xfe broken \xc3\n" + ("z" * 100_000).encode() + b"\nfine\n"
    status, out, err = await gembot(
        "console", "--config", str(config), stdin=stdin, env={"GEMINI_API_KEY": API_KEY}
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "Your message is empty. Please send some text."
    assert "not valid UTF-8" in lines[1]
    assert "too long (100000 characters; the limit is 8000)" in lines[2]
    assert lines[3] == "echo: fine"
    assert "Traceback" not in err
    assert len(gemini.requests) == 1


async def test_missing_api_key_is_one_clear_line(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    status, out, err = await gembot("console", "--config", str(config), stdin=b"hi\n", env={})
    assert status == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "gembot: config error: gemini.api_key is required but empty: "
        "set the environment variable GEMINI_API_KEY"
    ]
    assert gemini.requests == []


async def test_wrong_api_key_is_reported_not_crashed(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url)
    status, out, err = await gembot(
        "console", "--config", str(config), stdin=b"hi\n", env={"GEMINI_API_KEY": "wrong-key-123456"}
    )
    assert status == 0
    assert "API key is not accepted" in out
    assert "gembot alert: " in err  # the console's user is the operator
    assert "wrong-key-123456" not in out + err
    assert "Traceback" not in err


async def test_terminal_control_sequences_in_an_answer_are_not_printed(
    gemini: GeminiEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gemini.base_url)
    # A window title (OSC), clear screen and colours (CSI), a bell, a C1 CSI, and a hyperlink (OSC 8).
    gemini.script(
        Reply(
            chunks=[
                "\x1b]0;pwned\x07Hello ",
                "\x1b[2J\x1b[31mred\x1b[0m\x07 ",
                "\x9b1m\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\\tok\r",
            ]
        )
    )
    status, out, err = await gembot(
        "console", "--config", str(config), stdin=b"hi\n", env={"GEMINI_API_KEY": API_KEY}
    )
    assert status == 0, err
    assert out == "Hello red 1mlink\tok\n"


async def in_terminal(*args: str, typed: list[bytes], env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m bot ARGS`` with stdin, stdout and stderr on one pseudo-terminal, each line of
    ``typed`` typed at a ``you>`` prompt; returns (status, everything the terminal showed)."""
    import pty

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GEMBOT_", "XDG_"))}
    environment.update(env)
    main, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdin=terminal, stdout=terminal, stderr=terminal, env=environment
    )
    os.close(terminal)
    to_type = list(typed)
    shown = bytearray()
    while True:
        if to_type and shown.count(b"you> ") > len(typed) - len(to_type):
            os.write(main, to_type.pop(0))
        try:
            chunk = await asyncio.wait_for(asyncio.to_thread(os.read, main, 4096), timeout=60)
        except OSError:  # EIO: every process holding the terminal is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    status = await asyncio.wait_for(process.wait(), timeout=60)
    return status, shown.decode("utf-8", "replace").replace("\r\n", "\n")


async def test_in_a_terminal_only_the_conversation_shows(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url, logging={"level": "INFO"})
    env = {"GEMINI_API_KEY": API_KEY, "HOME": str(tmp_path), "LANG": "C"}
    status, shown = await in_terminal("console", "--config", str(config), typed=[b"hi\n", b"exit\n"], env=env)
    assert status == 0, shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[0].startswith("gembot console")
    assert "gembot> echo: hi" in lines
    assert not [
        line for line in lines if "alembic" in line.lower() or "message.handled" in line or "{" in line
    ]
    assert len(lines) == 4, lines  # the banner, "you> hi", the answer, "you> exit"
    history = tmp_path / ".gembot_history"
    assert history.read_text(encoding="utf-8").split() == ["hi", "exit"]
    assert history.stat().st_mode & 0o777 == 0o600


async def test_verbose_console_logs_for_people_on_a_terminal(gemini: GeminiEmulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, gemini.base_url, logging={"level": "INFO"})
    env = {"GEMINI_API_KEY": API_KEY, "HOME": str(tmp_path), "LANG": "C"}
    status, shown = await in_terminal(
        "console", "--verbose", "--config", str(config), typed=[b"hi\n", b"exit\n"], env=env
    )
    assert status == 0, shown
    handled = [line for line in shown.splitlines() if "message.handled" in line]
    assert len(handled) == 1
    assert not handled[0].lstrip().startswith("{")  # structlog's console renderer, not JSON
    assert "outcome=answered" in handled[0]
    assert "alembic" not in shown.lower()

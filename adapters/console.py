"""The terminal dialogue: lines from stdin (a TTY or a pipe) through the same engine, store and guards."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import sys
import uuid
from typing import BinaryIO, TextIO

from adapters.base import Alerts
from bot.domain import AdminAlert, Delta, FinalAnswer, Incoming, Notice, Platform, ReplyEvent, Typing
from bot.engine import Engine
from bot.i18n import Language, pick_language, text

EXIT_WORDS = frozenset({"exit", "quit", "退出"})
COMMANDS = frozenset({"start", "help", "reset", "stats", "forget", "model", "persona", "settings", "usage"})


# Terminal control: CSI sequences, OSC/DCS/SOS/PM/APC strings (up to BEL or ST), other two-character
# escapes, then any C0 control character but newline and tab, DEL and the C1 controls.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str) -> str:
    """``text`` without terminal control sequences or control characters (newlines and tabs stay)."""
    return _CONTROL.sub("", text)


def parse_line(line: str) -> tuple[str | None, str]:
    """``/reset now`` -> ("reset", "now"); plain text -> (None, text)."""
    stripped = line.strip()
    if stripped.startswith("/") and len(stripped) > 1:
        head, _, rest = stripped[1:].partition(" ")
        return head.lower(), rest.strip()
    return None, line


class ConsoleRenderer:
    """Prints an answer as it streams; the final text completes what the deltas already showed."""

    def __init__(self, out: TextIO, *, interactive: bool) -> None:
        self._out = out
        self._interactive = interactive

    async def render(self, events: object) -> None:
        """Consume one answer's events and print them."""
        shown = ""
        prefix_printed = False
        assert hasattr(events, "__aiter__")
        async for event in events:
            assert isinstance(event, Typing | Delta | FinalAnswer | Notice)
            if not prefix_printed and not isinstance(event, Typing):
                if self._interactive:
                    self._out.write("gembot> ")
                prefix_printed = True
            shown = self._print(event, shown)
        self._out.flush()

    def _print(self, event: ReplyEvent, shown: str) -> str:
        out = self._out
        if isinstance(event, Delta):
            out.write(printable(event.text))
            out.flush()
            return shown + event.text
        if isinstance(event, FinalAnswer):
            if shown and event.text.startswith(shown):
                out.write(printable(event.text[len(shown) :]))
            elif shown:
                out.write("\n" + printable(event.text))
            else:
                out.write(printable(event.text))
            out.write("\n")
            if event.notice is not None:
                out.write(printable(event.notice.text) + "\n")
            return event.text
        if isinstance(event, Notice):
            if shown:
                out.write("\n")
            out.write(printable(event.text) + "\n")
        return shown


async def _read_line(stream: BinaryIO) -> bytes:
    return await asyncio.to_thread(stream.readline)


async def converse(
    engine: Engine,
    alerts: Alerts,
    *,
    model: str,
    language: Language,
    user: str | None,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Converse on the terminal until ``exit``, ``quit``, ``退出`` or EOF; returns the exit status.

    ``language`` is the configured default (``$LANG`` may pick another); ``user`` the console user's id
    (default: ``$GEMBOT_CONSOLE_USER`` or the login name).
    """
    source = stdin or sys.stdin.buffer
    out = stdout or sys.stdout
    interactive = source is sys.stdin.buffer and sys.stdin.isatty()
    user_id = user or os.environ.get("GEMBOT_CONSOLE_USER") or _login_name()
    language = pick_language(os.environ.get("LANG"), language)
    renderer = ConsoleRenderer(out, interactive=interactive)

    async def show_alert(alert: AdminAlert) -> None:
        # The console's user is the operator: alerts go to stderr, beside the replies.
        print(f"gembot alert: {alert.text}", file=sys.stderr, flush=True)

    unsubscribe = alerts.subscribe(show_alert)
    try:
        if interactive:
            out.write(text(language, "console_banner", model=model) + "\n")
            out.flush()
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            raw = await _read_line(source)
            if not raw:
                break
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                out.write("(That line is not valid UTF-8 text, so it was not sent. Please type it again.)\n")
                out.flush()
                continue
            if line.strip().lower() in EXIT_WORDS:
                break
            command, args = parse_line(line)
            message = Incoming(
                platform=Platform.CONSOLE,
                chat_key=user_id,
                user_id=user_id,
                user_name=user_id,
                text=line if command is None else args,
                event_id=f"console-{uuid.uuid4().hex}",
                language=language,
                command=command,
                command_args=args if command is not None else "",
                operator=True,
            )
            await renderer.render(engine.handle(message))
    finally:
        unsubscribe()
    return 0


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"

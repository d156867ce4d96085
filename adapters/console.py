"""The terminal dialogue: lines from stdin (a TTY or a pipe) through the same engine, store and guards."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import sys
import uuid
from pathlib import Path
from typing import BinaryIO, TextIO

from adapters.base import Alerts
from bot.domain import (
    AdminAlert,
    Attachment,
    AttachmentProblem,
    Delta,
    FinalAnswer,
    Incoming,
    Notice,
    Platform,
    ReplyEvent,
    Typing,
)
from bot.engine import Engine
from bot.i18n import Language, pick_language, text

EXIT_WORDS = frozenset({"exit", "quit", "退出"})
ATTACH = "attach"  # /attach PATH [text]: a local file sent as a platform would send it
# Read no more of a file than this over the size limit: enough to tell it is too large.
_DEFAULT_MAX_FILE = 20 * 1024 * 1024


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


class AnswerPrinter:
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


class LineReader:
    """The user's lines: through ``readline`` (line editing, a history kept across sessions) on a terminal,
    else whole lines from the stream, undecodable ones reported as None."""

    def __init__(self, source: BinaryIO, *, interactive: bool) -> None:
        self._source = source
        self._interactive = interactive
        self._history: Path | None = _open_history() if interactive else None

    async def read(self) -> str | None:
        """The next line without its line ending; raises EOFError at the end of the input."""
        if self._interactive:
            try:
                return await asyncio.to_thread(input, "you> ")
            except UnicodeDecodeError:
                return None
        raw = await asyncio.to_thread(self._source.readline)
        if not raw:
            raise EOFError
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return None

    def close(self) -> None:
        """Save the line history (readable by its owner only)."""
        if self._history is not None:
            import readline

            readline.write_history_file(self._history)
            self._history.chmod(0o600)


def history_path() -> Path:
    """The console's line history: ``$XDG_STATE_HOME/gembot/history``, else ``~/.gembot_history``."""
    state = os.environ.get("XDG_STATE_HOME")
    return Path(state) / "gembot" / "history" if state else Path.home() / ".gembot_history"


def _open_history() -> Path | None:
    try:
        import readline
    except ImportError:  # no GNU readline (Windows): plain input() still works
        return None
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_APPEND, 0o600))
        readline.read_history_file(path)
    except OSError:
        return None
    readline.set_history_length(1000)
    return path


def to_incoming(line: str, user_id: str, language: Language) -> Incoming:
    """One typed line as a message of the console user (``/name args`` is the command ``name``)."""
    command, args = parse_line(line)
    return Incoming(
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


def split_attach(args: str) -> tuple[str, str]:
    """``/attach``'s arguments: the path (in quotes when it has spaces) and the text after it."""
    args = args.strip()
    quote = args[:1]
    if quote in ("'", '"') and quote in args[1:]:
        path, _, rest = args[1:].partition(quote)
        return path, rest.strip()
    path, _, rest = args.partition(" ")
    return path, rest.strip()


def local_file(path_text: str, max_bytes: int) -> Attachment:
    """A local file as an attachment: read whole up to ``max_bytes``; over it, or unreadable, marked as
    a platform marks a file it would not or could not download."""
    path = Path(path_text).expanduser()
    name = path.name
    placeholder = f"[file {name}]"
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Attachment("", b"", placeholder, name, size, AttachmentProblem.TOO_LARGE)
        data = path.read_bytes()
    except OSError:
        return Attachment("", b"", placeholder, name, 0, AttachmentProblem.UNAVAILABLE)
    return Attachment("", data, placeholder, name, len(data))


async def console_message(line: str, user_id: str, language: Language, max_file_bytes: int) -> Incoming:
    """The message for one typed line: ``/attach PATH [text]`` sends the file with the text."""
    message = to_incoming(line, user_id, language)
    if message.command != ATTACH:
        return message
    path, rest = split_attach(message.command_args)
    attachment = await asyncio.to_thread(local_file, path, max_file_bytes)
    return Incoming(
        platform=message.platform,
        chat_key=message.chat_key,
        user_id=user_id,
        user_name=user_id,
        text=rest,
        event_id=message.event_id,
        language=language,
        attachments=(attachment,),
        operator=True,
    )


async def converse(
    engine: Engine,
    alerts: Alerts,
    *,
    model: str,
    language: Language,
    user: str | None,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    max_file_bytes: int = _DEFAULT_MAX_FILE,
) -> int:
    """Converse on the terminal until ``exit``, ``quit``, ``退出`` or EOF; returns the exit status.

    ``language`` is the configured default (``$LANG`` may pick another); ``user`` the console user's id
    (default: ``$GEMBOT_CONSOLE_USER`` or the login name); files larger than ``max_file_bytes`` are not
    read by ``/attach``.
    """
    source = stdin or sys.stdin.buffer
    out = stdout or sys.stdout
    interactive = source is sys.stdin.buffer and sys.stdin.isatty() and out is sys.stdout
    user_id = user or os.environ.get("GEMBOT_CONSOLE_USER") or _login_name()
    language = pick_language(os.environ.get("LANG"), language)
    printer = AnswerPrinter(out, interactive=interactive)
    reader = LineReader(source, interactive=interactive)

    async def show_alert(alert: AdminAlert) -> None:
        # The console's user is the operator: alerts go to stderr, beside the replies.
        print(f"gembot alert: {alert.text}", file=sys.stderr, flush=True)

    unsubscribe = alerts.subscribe(show_alert)
    try:
        if interactive:
            out.write(text(language, "console_banner", model=model) + "\n")
            out.flush()
        while True:
            try:
                line = await reader.read()
            except EOFError:
                break
            if line is None:
                out.write("(That line is not valid UTF-8 text, so it was not sent. Please type it again.)\n")
                out.flush()
                continue
            if line.strip().lower() in EXIT_WORDS:
                break
            message = await console_message(line, user_id, language, max_file_bytes)
            await printer.render(engine.handle(message))
    finally:
        unsubscribe()
        reader.close()
    return 0


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"

"""The data of server-sent events (``text/event-stream``), read the way Google's SDK reads Gemini's.

Lines end at CRLF, LF or CR; an event ends at a blank line. Unlike the SSE specification (and httpx-sse,
which follows it), an event still open when the stream ends is delivered, not dropped: a proxy may strip
the blank line after Gemini's last event, and that event carries the finishReason. Only ``data`` fields
are read; comments and other fields are skipped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable

__all__ = ["event_data"]

_LINE_END = re.compile(r"\r\n|\r|\n")


class _Events:
    """Assembles lines into events' data."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._open = False

    def feed(self, lines: Iterable[str]) -> list[str]:
        """The data of every event these lines complete."""
        done: list[str] = []
        for line in lines:
            if not line:
                if self._open:
                    done.append(self.close())
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value.removeprefix(" "))
                self._open = True
        return done

    def close(self) -> str:
        """The data of the open event, which it ends."""
        data = "\n".join(self._data)
        self._data, self._open = [], False
        return data

    @property
    def open(self) -> bool:
        """Whether an event has data not yet delivered."""
        return self._open


async def event_data(texts: AsyncIterable[str]) -> AsyncGenerator[str, None]:
    """The ``data`` of each event in the decoded text of a stream, in order (multi-line data joined
    with newlines), the last one included even without a blank line after it."""
    events = _Events()
    pending = ""
    async for text in texts:
        pending += text
        # A CR at the end may be the first half of a CRLF: keep it until the next piece.
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        *lines, rest = _LINE_END.split(pending[:cut])
        pending = rest + pending[cut:]
        for data in events.feed(lines):
            yield data
    for data in events.feed(_LINE_END.split(pending)):
        yield data
    if events.open:
        yield events.close()

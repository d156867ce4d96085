"""The interface the engine uses to screen user text and replies for sensitive words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of screening one text: ``text`` is the (possibly masked) text to use.

    ``spans`` are the flagged (start, end) character ranges of the original text.
    """

    flagged: bool
    text: str
    spans: tuple[tuple[int, int], ...] = ()


class StreamScreen(Protocol):
    """Screens a reply while it streams, holding back a tail that could still complete a listed word."""

    def feed(self, delta: str) -> str:
        """Take more reply text; return what is now safe to show."""
        ...

    def finish(self) -> str:
        """The stream ended; return the rest that is safe to show."""
        ...

    @property
    def flagged(self) -> bool:
        """Whether a listed word was found so far."""
        ...


class TextFilter(Protocol):
    """Sensitive-word screening; ``block`` or ``mask`` is decided by the filter's configuration."""

    @property
    def action(self) -> str:
        """``block`` or ``mask``."""
        ...

    @property
    def check_replies(self) -> bool:
        """Whether replies are screened too."""
        ...

    def check(self, text: str) -> Verdict:
        """Screen one complete text."""
        ...

    def screen_stream(self) -> StreamScreen:
        """A fresh screen for one streamed reply."""
        ...

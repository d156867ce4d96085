"""An answer's sources, searches, unread links and thought summary as Slack mrkdwn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from adapters.slack.feedback import section_blocks
from adapters.slack.markup import escape
from adapters.sourcing import Markup, sources_block, thoughts_glimpse
from bot.domain import Link, Sourcing

THOUGHTS_LIMIT: Final = 2500
CONTEXT_TEXT_LIMIT: Final = 3000
"""Characters of a context block's text element."""


def _link(link: Link) -> str:
    url = escape(link.uri).replace("|", "%7C")
    title = escape(link.title.replace("\n", " "))
    return f"<{url}|{title}>" if title else f"<{url}>"


_MRKDWN: Final = Markup(
    link=_link,
    bold=lambda text: f"*{escape(text)}*",
    italic=lambda text: f"_{escape(text)}_",
    plain=escape,
)


def thoughts_mrkdwn(sourcing: Sourcing | None) -> str:
    """The thought summary as a quote headed by its label, or ''."""
    thoughts = thoughts_glimpse(sourcing, THOUGHTS_LIMIT)
    if sourcing is None or not thoughts:
        return ""
    quoted = "\n".join(f">{escape(line)}" for line in thoughts.splitlines())
    return f">_{escape(sourcing.thoughts_label)}_\n{quoted}"


def thoughts_block(sourcing: Sourcing | None) -> dict[str, Any] | None:
    """The thought summary as a ``context`` block (small grey text above the answer), or None."""
    thoughts = thoughts_glimpse(sourcing, THOUGHTS_LIMIT)
    if sourcing is None or not thoughts:
        return None
    body = f"_{escape(sourcing.thoughts_label)}_\n{escape(thoughts)}"[:CONTEXT_TEXT_LIMIT]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": body}]}


def sources_mrkdwn(sourcing: Sourcing | None) -> str:
    """The numbered sources, the searches Gemini ran and the unread links, as mrkdwn lines, or ''."""
    return sources_block(sourcing, _MRKDWN)


@dataclass(frozen=True, slots=True)
class ThoughtsOpening:
    """The thought summary that opens an answer: quoted in the message text, a context block in its blocks."""

    quote: str
    block: dict[str, Any]

    @classmethod
    def of(cls, sourcing: Sourcing | None) -> ThoughtsOpening | None:
        """The opening of an answer with ``sourcing``; None when it shows no thoughts."""
        block = thoughts_block(sourcing)
        return cls(thoughts_mrkdwn(sourcing), block) if block is not None else None

    def blocks(self, chunk: str) -> list[dict[str, Any]] | None:
        """The blocks of the message ``chunk`` when it opens with the thoughts (the context block above the
        answer's sections); None for any other message, which goes as plain mrkdwn text."""
        if not chunk.startswith(self.quote):
            return None
        rest = chunk[len(self.quote) :].lstrip("\n")
        return [self.block, *(section_blocks(rest) if rest else [])]

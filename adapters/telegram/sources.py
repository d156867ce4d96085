"""An answer's sources, searches, unread links and thought summary as Telegram HTML."""

from __future__ import annotations

import html
from typing import Final

from adapters.sourcing import Markup, sources_block, thoughts_glimpse
from bot.domain import Link, Sourcing

THOUGHTS_LIMIT: Final = 3000


def _plain(text: str) -> str:
    return html.escape(text, quote=False)


def _link(link: Link) -> str:
    return f'<a href="{html.escape(link.uri, quote=True)}">{_plain(link.title or link.uri)}</a>'


_HTML: Final = Markup(
    link=_link,
    bold=lambda text: f"<b>{_plain(text)}</b>",
    italic=lambda text: f"<i>{_plain(text)}</i>",
    plain=_plain,
)


def thoughts_html(sourcing: Sourcing | None) -> str:
    """The thought summary in a collapsed (expandable) quote headed by its label, or ''."""
    thoughts = thoughts_glimpse(sourcing, THOUGHTS_LIMIT)
    if sourcing is None or not thoughts:
        return ""
    return f"<blockquote expandable><b>{_plain(sourcing.thoughts_label)}</b>\n{_plain(thoughts)}</blockquote>"


def sources_html(sourcing: Sourcing | None) -> str:
    """The numbered sources, the searches Gemini ran and the unread links, as HTML lines, or ''."""
    return sources_block(sourcing, _HTML)

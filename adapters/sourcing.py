"""The layout of an answer's sources, searches and unread links, whatever the platform's markup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.domain import Link, Sourcing


@dataclass(frozen=True, slots=True)
class Markup:
    """How a platform writes the few things the layout needs (each takes plain text)."""

    link: Callable[[Link], str]
    bold: Callable[[str], str]
    italic: Callable[[str], str]
    plain: Callable[[str], str]


def sources_block(sourcing: Sourcing | None, markup: Markup) -> str:
    """The numbered sources, the searches Gemini ran (links to their results) and the unread links."""
    if sourcing is None:
        return ""
    blocks: list[str] = []
    if sourcing.sources:
        lines = [markup.bold(sourcing.sources_label)]
        lines += [f"{n}. {markup.link(source)}" for n, source in enumerate(sourcing.sources, 1)]
        blocks.append("\n".join(lines))
    if sourcing.searches:
        links = " · ".join(markup.link(search) for search in sourcing.searches)
        blocks.append(f"{markup.plain(sourcing.searches_label)}: {links}")
    if sourcing.failed:
        blocks.append(markup.italic(sourcing.failed))
    return "\n\n".join(blocks)


def thoughts_glimpse(sourcing: Sourcing | None, limit: int) -> str:
    """The thought summary cut to ``limit`` characters (it is a glimpse, not the answer), or ''."""
    thoughts = sourcing.thoughts if sourcing is not None else ""
    if len(thoughts) > limit:
        return thoughts[: limit - 1].rstrip() + "…"
    return thoughts

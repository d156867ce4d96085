"""What the engine gathers beside an answer's text: sources, searches, unread links, thoughts, tool use
and the model parts to keep for the next turn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.domain import Sourcing
from bot.i18n import Language, text
from bot.llm.grounding import GroundingCollector, cite
from bot.llm.parts import merge_kept
from bot.llm.tools import CODE_EXECUTION, GOOGLE_SEARCH, URL_CONTEXT
from bot.llm.types import LlmChunk


@dataclass(frozen=True, slots=True)
class Sourced:
    """The answer's Markdown with its citation markers, and what to show with it (None: nothing)."""

    text: str
    sourcing: Sourcing | None


@dataclass
class AnswerExtras:
    """Accumulates the ``ResponseExtras`` of one answer's chunks."""

    _grounding: GroundingCollector = field(default_factory=GroundingCollector)
    _thoughts: list[str] = field(default_factory=list)
    _kept: list[Mapping[str, Any]] = field(default_factory=list)
    _code_runs: int = 0

    def add(self, chunk: LlmChunk) -> None:
        """Take in one chunk (its text too: the model parts of the turn keep every piece in order)."""
        extras = chunk.extras
        if extras is None:
            if chunk.text:
                self._kept.append({"text": chunk.text})
            return
        if extras.metadata is not None:
            self._grounding.add(extras.metadata)
        if extras.thoughts:
            self._thoughts.append(extras.thoughts)
        self._kept.extend(extras.parts)
        self._code_runs += extras.code_runs

    def tool_calls(self) -> dict[str, int]:
        """How many searches, link reads and code runs the answer took (tools unused are left out)."""
        grounding = self._grounding.result()
        counts = {
            GOOGLE_SEARCH: len(grounding.queries),
            URL_CONTEXT: len(grounding.urls_read),
            CODE_EXECUTION: self._code_runs,
        }
        return {tool: n for tool, n in counts.items() if n}

    def model_parts(self) -> list[dict[str, Any]] | None:
        """The parts to send back as this model turn, or None when its plain text says the same."""
        merged = merge_kept(self._kept)
        if all(set(part) == {"text"} for part in merged):
            return None
        return merged

    def finish(self, answer: str, language: Language, *, max_sources: int, show_thoughts: bool) -> Sourced:
        """``answer`` with its citations, and the sources, searches, failed links and thoughts to show."""
        grounding = self._grounding.result()
        cited = cite(answer, grounding, max_sources)
        failed = ""
        if cited.failed_urls:
            hosts = ", ".join(dict.fromkeys(urlsplit(u).hostname or u for u in cited.failed_urls))
            failed = text(language, "urls_failed", urls=hosts)
        sourcing = Sourcing(
            sources=cited.sources,
            searches=cited.searches,
            failed=failed,
            thoughts="".join(self._thoughts).strip() if show_thoughts else "",
            sources_label=text(language, "sources"),
            searches_label=text(language, "searches"),
            thoughts_label=text(language, "thoughts"),
        )
        return Sourced(cited.text, sourcing if sourcing else None)

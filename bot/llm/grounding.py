"""Where an answer came from: Gemini's grounding metadata turned into numbered, linked sources.

Gemini reports, for a grounded answer, the web pages it used (``groundingChunks``), which stretch of the
answer each page supports (``groundingSupports[].segment``, offsets in UTF-8 bytes of the answer text),
the searches it ran (``webSearchQueries``) and, with URL context, which links it could not open
(``urlContextMetadata``). :class:`GroundingCollector` gathers them across the chunks of a stream (chunk
indices refer to every chunk seen so far); :func:`cite` puts numbered link markers after the supported
stretches and returns the sources to list under the answer.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote_plus, urlsplit

from bot.domain import Link

SEARCH_URL: Final = "https://www.google.com/search?q="
_FAILED_STATUSES: Final = frozenset(
    {"URL_RETRIEVAL_STATUS_ERROR", "URL_RETRIEVAL_STATUS_PAYWALL", "URL_RETRIEVAL_STATUS_UNSAFE"}
)
_MARKUP = re.compile(r"[*_~`\s]+")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


Source = Link
"""A web page an answer drew on: its link and the title Gemini gave it (often the site's domain)."""


@dataclass(frozen=True, slots=True)
class Support:
    """A stretch of the answer (UTF-8 byte offsets, end exclusive) and the chunks that support it."""

    start: int
    end: int
    text: str
    chunks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Grounding:
    """Everything Gemini said about the sources of one answer."""

    chunks: tuple[Source | None, ...] = ()  # None: a chunk that is not a web page (kept for the indices)
    supports: tuple[Support, ...] = ()
    queries: tuple[str, ...] = ()
    failed_urls: tuple[str, ...] = ()
    urls_read: tuple[str, ...] = ()  # every link Gemini tried to open, failed or not

    def __bool__(self) -> bool:
        return bool(self.chunks or self.queries or self.failed_urls)


@dataclass(frozen=True, slots=True)
class CitedAnswer:
    """The answer's Markdown with ``[n]`` link markers, and the sources they number, in order."""

    text: str
    sources: tuple[Source, ...] = ()
    searches: tuple[Source, ...] = ()  # each search Gemini ran, as a link to its results page
    failed_urls: tuple[str, ...] = ()


@dataclass
class GroundingCollector:
    """Accumulates ``groundingMetadata`` and ``urlContextMetadata`` over the chunks of one answer."""

    _chunks: list[Source | None] = field(default_factory=list)
    _supports: list[Support] = field(default_factory=list)
    _queries: list[str] = field(default_factory=list)
    _failed: list[str] = field(default_factory=list)
    _read: list[str] = field(default_factory=list)

    def add(self, candidate: Mapping[str, Any]) -> None:
        """Take in one response candidate's metadata (anything malformed is skipped, never raised)."""
        metadata = candidate.get("groundingMetadata")
        if isinstance(metadata, Mapping):
            self._add_grounding(metadata)
        url_context = candidate.get("urlContextMetadata")
        if isinstance(url_context, Mapping):
            for item in _mappings(url_context.get("urlMetadata")):
                url, status = item.get("retrievedUrl"), item.get("urlRetrievalStatus")
                if isinstance(url, str) and url not in self._read:
                    self._read.append(url)
                if isinstance(url, str) and status in _FAILED_STATUSES and url not in self._failed:
                    self._failed.append(url)

    def _add_grounding(self, metadata: Mapping[str, Any]) -> None:
        for chunk in _mappings(metadata.get("groundingChunks")):
            web = chunk.get("web")
            uri = web.get("uri") if isinstance(web, Mapping) else None
            if isinstance(uri, str) and uri.startswith(("https://", "http://")):
                title = web.get("title") if isinstance(web, Mapping) else None
                self._chunks.append(Source(uri, title if isinstance(title, str) and title else _host(uri)))
            else:
                self._chunks.append(None)
        # In a stream, support chunk indices count every chunk received so far, in order.
        for support in _mappings(metadata.get("groundingSupports")):
            segment = support.get("segment")
            indices = support.get("groundingChunkIndices")
            if not isinstance(segment, Mapping) or not isinstance(indices, list):
                continue
            end = segment.get("endIndex")
            if not isinstance(end, int) or end <= 0:
                continue
            start = segment.get("startIndex", 0)
            text = segment.get("text", "")
            self._supports.append(
                Support(
                    start=start if isinstance(start, int) and 0 <= start < end else 0,
                    end=end,
                    text=text if isinstance(text, str) else "",
                    chunks=tuple(i for i in indices if isinstance(i, int) and i >= 0),
                )
            )
        for query in metadata.get("webSearchQueries") or ():
            if isinstance(query, str) and query.strip() and query not in self._queries:
                self._queries.append(query)

    def result(self) -> Grounding:
        """What was gathered so far."""
        return Grounding(
            tuple(self._chunks),
            tuple(self._supports),
            tuple(self._queries),
            tuple(self._failed),
            tuple(self._read),
        )


def cite(text: str, grounding: Grounding, max_sources: int) -> CitedAnswer:
    """``text`` with a ``[n](uri)`` marker after each supported stretch, and the sources listed.

    Sources are numbered in the order the answer first cites them, deduplicated by link, and at most
    ``max_sources`` are kept (markers of the others are left out). A stretch is placed by its byte
    offsets when the bytes there are its text, else by finding its text; one that cannot be placed, or
    that ends inside a fenced code block, gets no marker (its sources are still listed).
    """
    offsets = _CharOffsets(text)
    fences = _fenced_spans(text)
    placed: dict[int, list[int]] = {}  # character index -> chunk indices cited there
    search_from = 0
    for support in sorted(grounding.supports, key=lambda s: s.end):
        at = _place(text, offsets, support, search_from)
        if at is None:
            continue
        search_from = at
        if any(start < at < end for start, end in fences):
            continue
        placed.setdefault(at, []).extend(support.chunks)

    numbers: dict[str, int] = {}
    sources: list[Source] = []

    def number(chunk: int) -> int | None:
        source = grounding.chunks[chunk] if 0 <= chunk < len(grounding.chunks) else None
        if source is None:
            return None
        if source.uri not in numbers:
            if len(sources) >= max_sources:
                return None
            sources.append(source)
            numbers[source.uri] = len(sources)
        return numbers[source.uri]

    pieces: list[str] = []
    last = 0
    for at in sorted(placed):
        cited = sorted({n for n in map(number, placed[at]) if n is not None})
        if not cited:
            continue
        pieces.append(text[last:at])
        pieces.append("".join(f"[\\[{n}\\]]({sources[n - 1].uri})" for n in cited))
        last = at
    pieces.append(text[last:])
    for chunk in range(len(grounding.chunks)):  # sources Gemini used without a placed stretch
        number(chunk)
    searches = tuple(Source(SEARCH_URL + quote_plus(q), q) for q in grounding.queries)
    return CitedAnswer("".join(pieces), tuple(sources), searches, grounding.failed_urls)


class _CharOffsets:
    """Maps UTF-8 byte offsets of a text to character indices (a byte inside a character rounds up)."""

    def __init__(self, text: str) -> None:
        self._starts: list[int] = []
        total = 0
        for char in text:
            self._starts.append(total)
            total += len(char.encode("utf-8", "surrogatepass"))
        self._starts.append(total)
        self.size = total

    def char_index(self, byte: int) -> int:
        return bisect.bisect_left(self._starts, byte)


def _place(text: str, offsets: _CharOffsets, support: Support, search_from: int) -> int | None:
    """The character index right after ``support``'s stretch of ``text``, or None."""
    if support.end <= offsets.size:
        start, end = offsets.char_index(support.start), offsets.char_index(support.end)
        if not support.text or _plain(text[start:end]) == _plain(support.text):
            return end
    if support.text:
        found = text.find(support.text, search_from)
        if found < 0:
            found = text.find(support.text)
        if found >= 0:
            return found + len(support.text)
    return None


def _plain(text: str) -> str:
    """``text`` without Markdown emphasis markers and white space, for comparing a stretch with its text."""
    return _MARKUP.sub("", text)


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of fenced code blocks (an unclosed fence runs to the end)."""
    spans: list[tuple[int, int]] = []
    opened: tuple[int, str] | None = None
    for match in _FENCE.finditer(text):
        marker = match.group(1)
        if opened is None:
            opened = (match.start(), marker)
        elif marker[0] == opened[1][0] and len(marker) >= len(opened[1]):
            line_end = text.find("\n", match.end())
            spans.append((opened[0], len(text) if line_end < 0 else line_end))
            opened = None
    if opened is not None:
        spans.append((opened[0], len(text)))
    return spans


def _mappings(value: object) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return (item for item in value if isinstance(item, Mapping))
    return ()


def _host(uri: str) -> str:
    return urlsplit(uri).hostname or uri

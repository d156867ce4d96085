"""The sensitive-word filter: one Aho-Corasick automaton (ahocorasick_rs) per word-list version.

ahocorasick_rs (Rust's aho-corasick crate) rather than pyahocorasick: on a list of Chinese words, whose
automaton's root has thousands of children, it scans a 200-character text about 40 times faster (4 µs
against 170 µs), and every message and streamed reply is scanned (docs/benchmarks.md).

Matching runs over folded text (:mod:`bot.guards.fold`). Words of spaced scripts (Latin, Greek,
Cyrillic, digits) must match whole words, so ``ass`` does not hit ``class``; Chinese words match
anywhere. A hit that lies inside an occurrence of an allowed word is not flagged. Masking replaces the
original characters of each hit (separators inside it included) by as many ``*``.

The word list is immutable; a reload builds a new one and swaps one reference, so every check sees either
the old list or the new one, never none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import ahocorasick_rs

from bot.config import FilterSettings
from bot.guards.filter import StreamScreen, Verdict
from bot.guards.fold import FoldedText, TextFolder, fold, fold_word, is_word_char, word_gaps
from bot.guards.words import never_matches, read_words_file
from bot.observability.logs import get_logger

__all__ = ["WordFilter", "WordList", "mask_spans"]

log = get_logger(__name__)

# Extra normalized characters held back beyond the longest word: the boundary after a word depends on
# the character that follows it and on whether that one stands alone.
_BOUNDARY_MARGIN: Final = 2

Span = tuple[int, int]


@dataclass(slots=True)
class _Entry:
    listed: bool = False
    allowed: bool = False
    whole_word: bool = False
    gaps: frozenset[int] = frozenset()


class WordList:
    """Listed and allowed words compiled into one automaton (immutable once built)."""

    def __init__(self, words: Iterable[str] = (), allow: Iterable[str] = ()) -> None:
        entries: dict[str, _Entry] = {}
        self.never_matching: str | None = None
        """Why a listed or allowed word normalizes to nothing (see :func:`never_matching`), if one does."""
        for word in words:
            key = fold_word(word)
            if not key and self.never_matching is None:
                self.never_matching = never_matches(word)
            if key:
                entry = entries.setdefault(key, _Entry())
                entry.listed = True
                if not word.strip().isalnum():
                    entry.gaps |= word_gaps(word)
        for word in allow:
            key = fold_word(word)
            if not key and self.never_matching is None:
                self.never_matching = never_matches(word)
            if key:
                entries.setdefault(key, _Entry()).allowed = True
        for key, entry in entries.items():
            entry.whole_word = all(is_word_char(c) for c in key)
        self._entries = list(entries.values())
        # Standard match semantics: with ``overlapping`` every occurrence of every word is reported.
        self._automaton = (
            ahocorasick_rs.AhoCorasick(list(entries), matchkind=ahocorasick_rs.MatchKind.Standard)
            if entries
            else None
        )
        self.size = sum(1 for entry in entries.values() if entry.listed)
        self.longest = max((len(k) for k in entries), default=0)

    def find(self, norm: FoldedText, start: int = 0) -> list[Span]:
        """Flagged spans (normalized indices, end exclusive) of hits beginning at or after ``start``.

        Allowed occurrences are looked for from ``start - longest`` so that one covering a hit is seen.
        """
        if self._automaton is None or not norm.chars:
            return []
        scan_from = max(0, start - self.longest)
        text = "".join(norm.chars[scan_from:])
        hits: list[Span] = []
        allowed: list[Span] = []
        entries = self._entries
        for index, found_at, found_end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            entry = entries[index]
            begin, end = found_at + scan_from, found_end + scan_from
            if entry.allowed:
                allowed.append((begin, end))
            if not entry.listed or begin < start:
                continue
            if entry.whole_word and not (
                norm.boundary(begin) and norm.boundary(end) and norm.joins(begin, end, entry.gaps)
            ):
                continue
            hits.append((begin, end))
        return _outside(hits, allowed) if allowed else hits


def _outside(hits: list[Span], allowed: list[Span]) -> list[Span]:
    """The hits not contained in any allowed span."""
    allowed.sort()
    kept: list[Span] = []
    reach, i = -1, 0
    for begin, end in sorted(hits):
        while i < len(allowed) and allowed[i][0] <= begin:
            reach = max(reach, allowed[i][1])
            i += 1
        if reach < end:
            kept.append((begin, end))
    return kept


def _original_spans(norm: FoldedText, spans: Iterable[Span]) -> list[Span]:
    return [(norm.origin[b], norm.end(e - 1)) for b, e in spans]


def mask_spans(text: str, spans: Iterable[Span], offset: int = 0) -> str:
    """``text`` (which starts at ``offset`` of the original) with every original span replaced by ``*``."""
    chars: list[str] | None = None
    for begin, end in spans:
        lo, hi = max(begin - offset, 0), min(end - offset, len(text))
        if lo >= hi:
            continue
        if chars is None:
            chars = list(text)
        chars[lo:hi] = "*" * (hi - lo)
    return text if chars is None else "".join(chars)


class _Screen:
    """Screens one streamed reply: shows only text no listed word can still reach."""

    def __init__(self, words: WordList, *, mask: bool) -> None:
        self._words = words
        self._mask = mask
        self._folder = TextFolder()
        self._raw = ""
        self._shown = 0  # original characters already returned
        self._settled = 0  # normalized characters whose verdict is final
        self._spans: set[Span] = set()
        self._hold = words.longest + _BOUNDARY_MARGIN

    @property
    def flagged(self) -> bool:
        return bool(self._spans)

    def feed(self, delta: str) -> str:
        if self._words.size == 0:
            return delta  # nothing listed: nothing to hold back
        self._raw += delta
        self._folder.feed(delta)
        return self._advance(final=False)

    def finish(self) -> str:
        if self._words.size == 0:
            return ""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        norm = self._folder.result
        n = len(norm)
        settled = n if final else max(0, n - self._hold)
        if settled > self._settled or final:
            # A hit beginning before the old settled point ended at least two characters before the text
            # did then (the hold is the longest word plus that margin), so it was found and decided then.
            for begin, end in self._words.find(norm, self._settled):
                if begin < settled:
                    self._spans.add((begin, end))
            self._settled = settled
        if self._spans and not self._mask:
            return ""  # block: the engine withholds the reply; nothing more is shown
        upto = len(self._raw) if final else (norm.origin[settled] if settled < n else self._shown)
        if upto <= self._shown:
            return ""
        piece = self._raw[self._shown : upto]
        piece = mask_spans(piece, _original_spans(norm, self._spans), self._shown)
        self._shown = upto
        return piece


class WordFilter:
    """The configured filter: ``filter.words`` plus ``filter.words_file``, reloaded when the file changes."""

    def __init__(self, settings: FilterSettings) -> None:
        """Load the word lists now (an unreadable ``words_file`` raises ``OSError``)."""
        self._settings = settings
        self._file = Path(settings.words_file) if settings.words_file else None
        self._signature = self._stat()
        self._words = self._build()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def action(self) -> str:
        return self._settings.action

    @property
    def check_replies(self) -> bool:
        return self._settings.check_replies

    @property
    def words(self) -> WordList:
        """The word list in force."""
        return self._words

    def check(self, text: str) -> Verdict:
        norm = fold(text)
        spans = _original_spans(norm, self._words.find(norm))
        if not spans:
            return Verdict(flagged=False, text=text)
        masked = mask_spans(text, spans) if self.action == "mask" else text
        return Verdict(flagged=True, text=masked, spans=tuple(spans))

    def screen_stream(self) -> StreamScreen:
        return _Screen(self._words, mask=self.action == "mask")

    def _stat(self) -> tuple[int, int, int] | None:
        if self._file is None:
            return None
        st = self._file.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _build(self) -> WordList:
        words = list(self._settings.words)
        if self._file is not None:
            words += read_words_file(self._file)
        built = WordList(words, self._settings.allow)
        if built.never_matching is not None:
            raise ValueError(f"{self._file or 'filter.words'}: {built.never_matching}")
        return built

    def reload_if_changed(self) -> bool:
        """Rebuild the list when ``words_file`` changed; True when a new list is in force.

        The old list keeps serving while the new one is built, and stays when the file cannot be read or
        lists a word that could never match.
        """
        if self._file is None:
            return False
        try:
            signature = self._stat()
            if signature == self._signature:
                return False
            started = time.perf_counter()
            words = self._build()
        except (OSError, ValueError) as exc:
            log.warning("filter.reload_failed", file=str(self._file), error=f"{type(exc).__name__}: {exc}")
            return False
        self._words, self._signature = words, signature
        log.info(
            "filter.reloaded",
            file=str(self._file),
            words=words.size,
            seconds=round(time.perf_counter() - started, 3),
        )
        return True

    def start_watching(
        self, interval: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Run :meth:`watch` as a background task (nothing to watch without ``words_file``)."""
        if self._file is not None and self._watcher is None:
            self._watcher = asyncio.create_task(self.watch(interval, sleep), name="filter-reload")

    async def aclose(self) -> None:
        """Stop the background reload task."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def watch(self, interval: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Check ``words_file`` every ``interval`` seconds until cancelled; the build runs in a thread."""
        if self._file is None:
            return
        while True:
            await sleep(interval)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                log.exception("filter.reload_failed", file=str(self._file))

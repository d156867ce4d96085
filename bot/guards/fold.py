"""Text folding against evasion, with a map from every folded character back to the original.

Per original character: NFKC -> casefold -> format and combining characters (Cf, Mn, Me) dropped ->
separators (spaces, punctuation, symbols, controls) noted and left out -> traditional to simplified
Chinese (OpenCC's ``t2s`` character table) -> digit styles to ASCII digits. The pipeline works one
character at a time so that every normalized character knows the original span it came from; OpenCC's
phrase table is not used for the same reason (it could change lengths). Listed words and screened texts go
through the same function, so both sides always agree.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Final

__all__ = ["FoldedText", "TextFolder", "fold", "fold_word", "is_word_char", "word_gaps"]

_DROP_CATEGORIES: Final = frozenset({"Cf", "Mn", "Me"})
_CONTENT_MAJOR: Final = frozenset({"L", "N"})
_HAN_DIGITS: Final = {
    **dict(zip("零〇一二三四五六七八九", "00123456789", strict=True)),
    **dict(zip("壹贰叁肆伍陆柒捌玖两", "1234567892", strict=True)),
}
# Letters below this code point (Latin, Greek, Cyrillic) and digits are written in spaced words.
_SPACED_SCRIPT_END: Final = 0x0530
# Per-character results are cached; the bound stops a flood of distinct code points from growing it forever.
_CACHE_LIMIT: Final = 200_000

_SEP: Final = None
# One original character becomes a sequence of content characters (str) and separators (None).
_Units = tuple[str | None, ...]


@cache
def _t2s_table() -> dict[str, str]:
    """OpenCC's traditional -> simplified character table (first candidate of each entry)."""
    table: dict[str, str] = {}
    text = resources.files("opencc").joinpath("dictionary", "TSCharacters.txt").read_text("utf-8")
    for line in text.splitlines():
        source, _, targets = line.partition("\t")
        target = targets.split(" ", 1)[0]
        if len(source) == 1 and len(target) == 1:
            table[source] = target
    return table


def _digit(ch: str) -> str:
    if ch in _HAN_DIGITS:
        return _HAN_DIGITS[ch]
    if not unicodedata.category(ch).startswith("N") or ch.isascii():
        return ch
    value = unicodedata.digit(ch, None)
    if value is not None:
        return str(value)
    number = unicodedata.numeric(ch, None)
    if number is not None and number.is_integer() and 0 <= number <= 100:
        return str(int(number))  # ⓫ -> 11
    return ch


def _units_uncached(ch: str) -> _Units:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())
    out: list[str | None] = []
    t2s = _t2s_table()
    for c in folded:
        category = unicodedata.category(c)
        if category in _DROP_CATEGORIES:
            continue
        if category[0] not in _CONTENT_MAJOR:
            out.append(_SEP)
            continue
        out.extend(_digit(t2s.get(c, c)))
    return tuple(out)


_UNITS: dict[str, _Units] = {}
# The characters that fold to exactly one content character (most of them), mapped to it: the folding
# loop's fast path (one lookup, no tuple to walk).
_SINGLE: dict[str, str] = {}


def _units(ch: str) -> _Units:
    units = _UNITS.get(ch)
    if units is None:
        units = _units_uncached(ch)
        if len(_UNITS) < _CACHE_LIMIT:
            _UNITS[ch] = units
            if len(units) == 1 and units[0] is not None:
                _SINGLE[ch] = units[0]
    return units


def is_word_char(ch: str) -> bool:
    """A letter or digit of a script that separates words with spaces (whole-word rules apply to it)."""
    return ch.isalnum() and ord(ch) < _SPACED_SCRIPT_END


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


@dataclass(slots=True)
class FoldedText:
    """Folded content characters and, for each, where it came from in the original text.

    ``origin[i]:end(i)`` is the original span of normalized character ``i`` (combining marks that followed
    it included). ``i in separated`` says a separator stood between characters ``i - 1`` and ``i`` (or
    ``i`` is the first), ``i in spaced`` that this separator included white space. The exceptions are
    kept, not a value per character: folding runs over every message and reply, and only hits look back.
    """

    chars: list[str] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    extended: dict[int, int] = field(default_factory=dict)  # i -> original end, where not origin[i] + 1
    separated: set[int] = field(default_factory=set)
    spaced: set[int] = field(default_factory=set)

    @property
    def text(self) -> str:
        """The normalized text."""
        return "".join(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def end(self, i: int) -> int:
        """Where character ``i``'s original span ends (exclusive)."""
        return self.extended.get(i, self.origin[i] + 1)

    def _single(self, i: int) -> bool:
        """Whether character ``i`` stands alone between separators (one letter of a spelled-out word)."""
        after = i + 1 >= len(self.chars) or i + 1 in self.separated
        return i in self.separated and after

    def boundary(self, p: int) -> bool:
        """Whether position ``p`` (between characters ``p - 1`` and ``p``) is a word boundary."""
        if p <= 0 or p >= len(self.chars):
            return True
        if not (is_word_char(self.chars[p - 1]) and is_word_char(self.chars[p])):
            return True
        return p in self.separated

    def joins(self, begin: int, end: int, gaps: frozenset[int]) -> bool:
        """Whether ``begin:end`` reads as one word (or as the listed phrase) in the original text.

        Symbols between letters join them (``fu.ck``), and so do spaces between letters spelled out one
        by one (``f u c k``); other white space splits words (``pen is`` is not ``penis``) unless the
        listed phrase has a space there (``gaps``: offsets inside the word).
        """
        for p in range(begin + 1, end):
            if p in self.spaced and p - begin not in gaps and not (self._single(p - 1) and self._single(p)):
                return False
        return True


class TextFolder:
    """Builds a :class:`FoldedText` from text given in pieces (the streaming screen feeds deltas)."""

    __slots__ = ("_length", "_pending_sep", "_pending_space", "result")

    def __init__(self) -> None:
        self.result = FoldedText()
        self._length = 0
        self._pending_sep = False
        self._pending_space = False

    @property
    def consumed(self) -> int:
        """How many original characters were fed so far."""
        return self._length

    def feed(self, text: str) -> None:
        """Fold ``text``, which continues what was fed before."""
        r = self.result
        chars, origin, extended = r.chars, r.origin, r.extended
        # Bound methods in locals: this loop runs once per character of every message and reply.
        add_char, add_origin, add_sep, add_space = chars.append, origin.append, r.separated.add, r.spaced.add
        pending, space = self._pending_sep, self._pending_space
        if not chars:
            pending = space = True  # the first character starts a word
        index = self._length
        single, cached = _SINGLE.get, _UNITS.get
        for ch in text:
            unit = single(ch)
            if unit is not None:
                # The same steps as for each unit below, written out: a call per character costs more.
                if pending:
                    add_sep(len(chars))
                    if space:
                        add_space(len(chars))
                    pending = space = False
                add_char(unit)
                add_origin(index)
                index += 1
                continue
            units = cached(ch) or _units(ch)
            if not units:
                last = len(chars) - 1
                if last >= 0 and extended.get(last, origin[last] + 1) == index and _is_mark(ch):
                    extended[last] = index + 1  # a combining mark goes with its base when masked
            else:
                for unit in units:
                    if unit is None:
                        pending = True
                        space = space or ch.isspace()
                        continue
                    if pending:
                        add_sep(len(chars))
                        if space:
                            add_space(len(chars))
                        pending = space = False
                    add_char(unit)
                    add_origin(index)
            index += 1
        self._length = index
        self._pending_sep, self._pending_space = pending, space


def fold(text: str) -> FoldedText:
    """Fold a complete text."""
    folder = TextFolder()
    folder.feed(text)
    return folder.result


def fold_word(word: str) -> str:
    """The normalized form of a listed or allowed word (separators inside it are left out)."""
    return "".join(unit for ch in word for unit in _units(ch) if unit is not None)


def word_gaps(word: str) -> frozenset[int]:
    """Offsets in ``fold_word(word)`` where the word has a separator (``kill yourself``: {4})."""
    gaps: set[int] = set()
    count = 0
    for ch in word.strip():
        for unit in _units(ch):
            if unit is None:
                if count:
                    gaps.add(count)
            else:
                count += 1
    return frozenset(gaps)

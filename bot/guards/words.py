"""The word list as an operator writes it: reading a words file, and which words could never match.

Kept apart from the filter itself so the config can check a list without building an automaton.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from bot.guards.fold import fold_word

_LETTER_OR_DIGIT: Final = re.compile(r"[^\W_]")


def read_words_file(path: str | os.PathLike[str]) -> list[str]:
    """One word per line, UTF-8 (a BOM is ignored); blank lines and lines starting with ``#`` are skipped."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def never_matching(words: Iterable[str]) -> str | None:
    """Why the first word that could never match cannot (None when every word can match).

    Matching runs over letters and digits only: symbols, emoji and punctuation are separators that
    evasions put between letters. A word made only of them normalizes to nothing; it is refused rather
    than matched literally, as a literal match would be evaded by the same tricks (a variation selector,
    a skin tone, a space) the normalization exists to undo. Words holding a letter or digit pass at C speed
    (a start with 50 000 words stays fast); :class:`WordList` checks exactly what it normalizes.
    """
    for word in words:
        if _LETTER_OR_DIGIT.search(word) is None and not fold_word(word):
            return never_matches(word)
    return None


def never_matches(word: str) -> str:
    """Why ``word`` can never match (it normalizes to nothing)."""
    return f"{word!r} has no letter or digit, and the filter matches only those: it would never match"

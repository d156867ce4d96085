"""A file's type from its bytes: a signature library for binary formats, a UTF-8 check for text.

The platform's claim counts only where the bytes say nothing (no known signature and not text); the
file's name says which family it pretends to be, so a PNG named ``report.pdf`` is caught.
"""

from __future__ import annotations

import codecs
import mimetypes
from dataclasses import dataclass
from typing import Final

import filetype

from bot.media.kinds import GENERIC, MediaFamily, documented, family_of, loose_family

__all__ = ["Detected", "detect", "looks_like_text", "named_family"]

# Signatures sit in the first few KB; text is judged on a sample as large.
_SAMPLE: Final = 64 * 1024
# Control characters beyond this share of a sample make it binary (tabs and line breaks do not count).
_MAX_CONTROL_SHARE: Final = 0.01
_TEXT_CONTROLS: Final = frozenset("\t\n\r\f\v\b\x1b")
_UNKNOWN: Final = "application/octet-stream"

# Python's own extension table only (the system's files differ from host to host), plus the extensions
# of formats users send that it lacks.
_EXTENSIONS: Final = mimetypes.MimeTypes()
for _mime, _extension in (
    ("text/markdown", ".md"),
    ("text/markdown", ".markdown"),
    ("audio/ogg", ".ogg"),
    ("audio/ogg", ".oga"),
    ("audio/ogg", ".opus"),
    ("audio/flac", ".flac"),
    ("audio/aac", ".aac"),
    ("audio/mp4", ".m4a"),
    ("video/webm", ".webm"),
    ("image/heif", ".heif"),
):
    _EXTENSIONS.add_type(_mime, _extension, strict=False)


@dataclass(frozen=True, slots=True)
class Detected:
    """What a file is: its MIME type in Gemini's spelling, its family (None: Gemini does not take it),
    and the family its name claims (None: the name claims nothing)."""

    mime_type: str
    family: MediaFamily | None
    named: MediaFamily | None

    @property
    def misnamed(self) -> bool:
        """Whether the bytes are of another family than the name says (audio and video pass for each
        other: an MP4 or OGG file may hold either). Unknown bytes under a text name are not called a lie:
        they are text in an encoding we do not read."""
        if self.named is None:
            return False
        actual = self.family or loose_family(self.mime_type)
        media = {MediaFamily.AUDIO, MediaFamily.VIDEO}
        if actual == self.named or (self.named in media and actual in media):
            return False
        return actual is not None or self.named is not MediaFamily.TEXT


def looks_like_text(data: bytes) -> bool:
    """Whether ``data`` reads as UTF-8 text (a BOM allowed): no NUL, almost no control characters."""
    sample = data[:_SAMPLE]
    if not sample or b"\x00" in sample:
        return False
    try:
        # Not final: the sample may end inside a character.
        decoded = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=len(data) <= _SAMPLE)
    except UnicodeDecodeError:
        return False
    controls = sum(1 for c in decoded if c < " " and c not in _TEXT_CONTROLS)
    return controls <= len(decoded) * _MAX_CONTROL_SHARE


def named_family(name: str) -> MediaFamily | None:
    """The family a file name's extension claims, None when it claims none we know."""
    guessed = _guess(name)
    if guessed is None:
        return None
    family = loose_family(guessed)
    if family is None and guessed.startswith("text/"):
        return MediaFamily.TEXT
    return family


def detect(data: bytes, *, claim: str = "", name: str = "") -> Detected:
    """The type of ``data``: from its signature, else text (typed by the claim or the name: Markdown,
    CSV, code, plain), else the platform's claim when it makes a specific one."""
    named = named_family(name)
    sniffed = filetype.guess_mime(data[:_SAMPLE])
    if isinstance(sniffed, str) and sniffed:
        mime = documented(sniffed)
        return Detected(mime, family_of(mime), named)
    if looks_like_text(data):
        mime = _text_type(claim, name)
        return Detected(mime, MediaFamily.TEXT, named)
    claimed = documented(claim)
    if claimed in GENERIC or family_of(claimed) is MediaFamily.TEXT:
        return Detected(_UNKNOWN, None, named)
    return Detected(claimed, family_of(claimed), named)


def _text_type(claim: str, name: str) -> str:
    """A text document's type: the claim's or the name's when Gemini takes it as text, else plain."""
    for candidate in (documented(claim), documented(_guess(name) or "")):
        if family_of(candidate) is MediaFamily.TEXT:
            return candidate
    return "text/plain"


def _guess(name: str) -> str | None:
    if not name:
        return None
    guessed, _encoding = _EXTENSIONS.guess_type(name, strict=False)
    return guessed

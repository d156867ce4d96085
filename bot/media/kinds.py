"""The file types Gemini takes, by family, and the spellings of them it documents.

Gemini reads images, audio, video, PDF and text documents; within each family it documents a list of
MIME types, and some formats have several common spellings (``audio/mpeg`` for ``audio/mp3``,
``video/quicktime`` for ``video/mov``) that are sent as the documented one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class MediaFamily(StrEnum):
    """What kind of thing a file is, as far as the gate and the notices care."""

    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    PDF = "pdf"
    TEXT = "text"


ACCEPTED: Final[Mapping[str, MediaFamily]] = {
    "image/png": MediaFamily.IMAGE,
    "image/jpeg": MediaFamily.IMAGE,
    "image/webp": MediaFamily.IMAGE,
    "image/heic": MediaFamily.IMAGE,
    "image/heif": MediaFamily.IMAGE,
    "audio/wav": MediaFamily.AUDIO,
    "audio/mp3": MediaFamily.AUDIO,
    "audio/aiff": MediaFamily.AUDIO,
    "audio/aac": MediaFamily.AUDIO,
    "audio/ogg": MediaFamily.AUDIO,
    "audio/flac": MediaFamily.AUDIO,
    "video/mp4": MediaFamily.VIDEO,
    "video/mpeg": MediaFamily.VIDEO,
    "video/mov": MediaFamily.VIDEO,
    "video/avi": MediaFamily.VIDEO,
    "video/x-flv": MediaFamily.VIDEO,
    "video/mpg": MediaFamily.VIDEO,
    "video/webm": MediaFamily.VIDEO,
    "video/wmv": MediaFamily.VIDEO,
    "video/3gpp": MediaFamily.VIDEO,
    "application/pdf": MediaFamily.PDF,
    "text/plain": MediaFamily.TEXT,
    "text/html": MediaFamily.TEXT,
    "text/css": MediaFamily.TEXT,
    "text/md": MediaFamily.TEXT,
    "text/csv": MediaFamily.TEXT,
    "text/xml": MediaFamily.TEXT,
    "text/rtf": MediaFamily.TEXT,
    "text/javascript": MediaFamily.TEXT,
    "application/x-javascript": MediaFamily.TEXT,
    "text/x-python": MediaFamily.TEXT,
    "application/x-python": MediaFamily.TEXT,
}
"""Every MIME type a request may carry, with its family."""

# Other spellings of accepted types (what detection libraries, platforms and file names say).
_ALIASES: Final[Mapping[str, str]] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mpeg": "audio/mp3",
    "audio/mpeg3": "audio/mp3",
    "audio/x-mp3": "audio/mp3",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-aiff": "audio/aiff",
    "audio/x-flac": "audio/flac",
    "audio/x-aac": "audio/aac",
    "audio/opus": "audio/ogg",
    "audio/x-opus+ogg": "audio/ogg",
    "application/ogg": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "video/quicktime": "video/mov",
    "video/x-msvideo": "video/avi",
    "video/msvideo": "video/avi",
    "video/x-ms-wmv": "video/wmv",
    "video/3gpp2": "video/3gpp",
    "text/markdown": "text/md",
    "text/x-markdown": "text/md",
    "application/xml": "text/xml",
    "application/rtf": "text/rtf",
    "application/javascript": "text/javascript",
    "text/x-script.python": "text/x-python",
    "application/csv": "text/csv",
}

GENERIC: Final = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
"""Claims that say nothing about a file's type."""


def documented(mime_type: str) -> str:
    """``mime_type`` lower-cased, without parameters, in the spelling Gemini documents where it has one."""
    bare = mime_type.partition(";")[0].strip().lower()
    return _ALIASES.get(bare, bare)


def family_of(mime_type: str) -> MediaFamily | None:
    """The family of an accepted type (any spelling), None for a type Gemini does not take."""
    return ACCEPTED.get(documented(mime_type))


def loose_family(mime_type: str) -> MediaFamily | None:
    """The family a type belongs to even when Gemini does not take that exact type (``image/gif``,
    ``video/x-matroska``), for telling whether a file is what its name says."""
    known = family_of(mime_type)
    if known is not None:
        return known
    major = documented(mime_type).partition("/")[0]
    return {"image": MediaFamily.IMAGE, "audio": MediaFamily.AUDIO, "video": MediaFamily.VIDEO}.get(major)


def media_kind(mime_type: str) -> str:
    """The family name of a type for records and metrics (``other`` for a type Gemini does not take)."""
    family = family_of(mime_type)
    return family.value if family is not None else "other"

"""A message's files made into request parts (inline bytes or Files API copies), and the files kept with
earlier exchanges sent again while those exchanges are in the window.

A file up to ``media.inline_max_bytes`` goes inline while the request's inline total stays under what
Gemini takes in one request; any other is uploaded. What is kept for later turns: the bytes of a file
sent inline (sent inline again; no remote copy to manage or lose), the Files API reference of an uploaded
one (no second copy of a large file). A reference that has expired is left out with a note in the
context saying so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from bot.config import MediaSettings
from bot.domain import Attachment
from bot.i18n import Language, text
from bot.llm.files import FilesApi, FileUploadError
from bot.llm.types import MediaPart
from bot.store.media import KeptMedia

__all__ = ["InlineBudget", "MediaUploadError", "PreparedMedia", "prepare_media", "resent_media"]

# Gemini refuses a request over 20 MB; inline bytes grow by a third in base64, and text comes on top.
REQUEST_INLINE_BYTES: Final = 14 * 1024 * 1024
# A reference this close to its expiry is treated as expired: the request may be retried for a while.
_EXPIRY_MARGIN: Final = timedelta(minutes=15)


class MediaUploadError(Exception):
    """A file of the message could not be handed to Gemini; ``name`` says which."""

    def __init__(self, name: str, uploaded: Sequence[str]) -> None:
        super().__init__(name)
        self.name = name
        self.uploaded = tuple(uploaded)  # copies already made for the message, to delete


@dataclass(slots=True)
class InlineBudget:
    """How many bytes a request may still carry inline."""

    left: int = REQUEST_INLINE_BYTES

    def take(self, size: int) -> bool:
        """Whether ``size`` more bytes fit inline (and if so, they are counted)."""
        if size > self.left:
            return False
        self.left -= size
        return True


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    """The new message's parts, what to keep with its exchange, and the Files API copies made for it."""

    parts: tuple[MediaPart, ...] = ()
    kept: tuple[KeptMedia, ...] = ()
    uploaded: tuple[str, ...] = ()
    routes: tuple[str, ...] = field(default=())  # "inline" or "file", per part


async def prepare_media(
    attachments: Sequence[Attachment],
    settings: MediaSettings,
    files: FilesApi | None,
    budget: InlineBudget,
    on_uploaded: Callable[[str], Awaitable[None]] | None = None,
) -> PreparedMedia:
    """Parts for ``attachments`` (typed by the media gate): inline where they fit, else uploaded
    (``on_uploaded`` hears of each copy made, at once).

    Raises :class:`MediaUploadError` when an upload fails after its retries.
    """
    parts: list[MediaPart] = []
    kept: list[KeptMedia] = []
    uploaded: list[str] = []
    routes: list[str] = []
    for attachment in attachments:
        size = len(attachment.data)
        name = attachment.name or attachment.placeholder
        if files is None or (size <= settings.inline_max_bytes and budget.take(size)):
            parts.append(MediaPart(attachment.mime_type, size, data=attachment.data))
            kept.append(KeptMedia(name, attachment.mime_type, size, data=attachment.data))
            routes.append("inline")
            continue
        try:
            remote = await files.upload(attachment.data, attachment.mime_type, name)
        except FileUploadError:
            raise MediaUploadError(name, uploaded) from None
        uploaded.append(remote.name)
        if on_uploaded is not None:
            await on_uploaded(remote.name)
        parts.append(MediaPart(attachment.mime_type, size, file_uri=remote.uri))
        kept.append(
            KeptMedia(
                name,
                attachment.mime_type,
                size,
                file_name=remote.name,
                file_uri=remote.uri,
                expires_at=remote.expires_at,
            )
        )
        routes.append("file")
    return PreparedMedia(tuple(parts), tuple(kept), tuple(uploaded), tuple(routes))


def resent_media(
    kept: Sequence[KeptMedia], now: datetime, budget: InlineBudget, lang: Language
) -> tuple[tuple[MediaPart, ...], str]:
    """The parts of an earlier exchange's files still usable, and a note naming those that are not."""
    parts: list[MediaPart] = []
    gone: list[str] = []
    for item in kept:
        usable_ref = item.file_uri and (item.expires_at is None or item.expires_at > now + _EXPIRY_MARGIN)
        if usable_ref:
            parts.append(MediaPart(item.mime_type, item.size, file_uri=item.file_uri or ""))
        elif item.data is not None and budget.take(len(item.data)):
            parts.append(MediaPart(item.mime_type, item.size, data=item.data))
        else:
            gone.append(text(lang, "media_gone", name=item.name))
    return tuple(parts), " ".join(gone)

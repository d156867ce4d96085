"""The files of a Telegram message: which ones to fetch (pure), and fetching them as ``Attachment``s."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Bot, Message, PhotoSize
from telegram.error import BadRequest, TelegramError

from bot.domain import Attachment, AttachmentProblem
from bot.observability.logs import get_logger

log = get_logger(__name__)

# The Bot API's answer to getFile for a file over the 20 MB it serves bots.
_TOO_BIG = "file is too big"


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file of a message, still on Telegram: fetched just before the message is answered.

    ``mime_type`` is Telegram's claim ("" when it makes none); ``size`` the declared size (None when
    Telegram does not say).
    """

    file_id: str
    mime_type: str
    placeholder: str
    name: str = ""
    size: int | None = None


def message_files(message: Message, max_bytes: int) -> tuple[MediaFile, ...] | None:
    """The files ``message`` carries (``()`` for none); None when its content is a kind Gemini cannot
    be given (an animated or video sticker)."""
    if message.photo:
        photo = pick_photo(message.photo, max_bytes)
        assert photo is not None
        return (MediaFile(photo.file_id, "image/jpeg", "[photo]", size=photo.file_size),)
    if message.sticker is not None:
        sticker = message.sticker
        if sticker.is_animated or sticker.is_video:
            return None  # TGS (Lottie) and WEBM stickers: no image to show Gemini
        return (MediaFile(sticker.file_id, "image/webp", "[sticker]", size=sticker.file_size),)
    if message.voice is not None:
        voice = message.voice
        # Voice notes are OGG/Opus by the Bot API's definition.
        mime = voice.mime_type or "audio/ogg"
        return (MediaFile(voice.file_id, mime, "[voice note]", size=voice.file_size),)
    if message.video_note is not None:
        note = message.video_note
        # Telegram's video notes are always MP4 (the Bot API names no type for them).
        return (MediaFile(note.file_id, "video/mp4", "[video note]", size=note.file_size),)
    for found, label in ((message.audio, "audio"), (message.video, "video"), (message.document, "file")):
        if found is not None:
            name = found.file_name or ""
            mime = found.mime_type or ""
            return (MediaFile(found.file_id, mime, placeholder(label, name, mime), name, found.file_size),)
    return ()


def placeholder(label: str, name: str, mime_type: str) -> str:
    """The history's marker of a file: ``[PDF report.pdf]``, ``[image scan.png]``, ``[audio song.mp3]``..."""
    if mime_type == "application/pdf":
        label = "PDF"
    elif mime_type.startswith("image/"):
        label = "image"
    return f"[{label} {name}]" if name else f"[{label}]"


def pick_photo(sizes: Sequence[PhotoSize], max_bytes: int) -> PhotoSize | None:
    """The largest size whose known byte size is within ``max_bytes`` (else the smallest one)."""
    if not sizes:
        return None
    fitting = [s for s in sizes if s.file_size is not None and s.file_size <= max_bytes]
    if fitting:
        return max(fitting, key=lambda s: (s.width * s.height, s.file_size or 0))
    return min(sizes, key=lambda s: (s.file_size or 0, s.width * s.height))


async def fetch_all(bot: Bot, files: Sequence[MediaFile], max_bytes: int) -> tuple[Attachment, ...]:
    """Every file downloaded (concurrently), in order; one that could not be is marked why."""
    return tuple(await asyncio.gather(*(fetch(bot, file, max_bytes) for file in files)))


async def fetch(bot: Bot, file: MediaFile, max_bytes: int) -> Attachment:
    """``file`` downloaded through getFile and the file URL; not downloaded when over ``max_bytes``."""
    if file.size is not None and file.size > max_bytes:
        return _missing(file, file.size, AttachmentProblem.TOO_LARGE)
    try:
        found = await bot.get_file(file.file_id)
        if found.file_size is not None and found.file_size > max_bytes:
            return _missing(file, found.file_size, AttachmentProblem.TOO_LARGE)
        data = bytes(await found.download_as_bytearray())
    except BadRequest as exc:
        if _TOO_BIG in exc.message.lower():
            return _missing(file, file.size or max_bytes + 1, AttachmentProblem.TOO_LARGE)
        log.warning("telegram.file_unavailable", error=exc.__class__.__name__, detail=exc.message[:200])
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    except TelegramError as exc:
        log.warning("telegram.file_unavailable", error=exc.__class__.__name__, detail=exc.message[:200])
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    except Exception:
        # Whatever went wrong, the message is still answered (with the notice for a missing file).
        log.exception("telegram.file_fetch_crashed")
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    if len(data) > max_bytes:
        return _missing(file, len(data), AttachmentProblem.TOO_LARGE)
    return Attachment(file.mime_type, data, file.placeholder, file.name, len(data))


def _missing(file: MediaFile, size: int, problem: AttachmentProblem) -> Attachment:
    if problem is AttachmentProblem.TOO_LARGE:
        log.info("telegram.file_too_large", size=size)
    return Attachment(file.mime_type, b"", file.placeholder, file.name, size, problem)

"""The media gate: the files of a message checked before it reaches Gemini (count, size, download, type,
name), each typed from its bytes; a file that fails stops the message with a notice naming why."""

from __future__ import annotations

from dataclasses import replace

from bot.config import MediaSettings, format_size
from bot.domain import Attachment, AttachmentProblem, Incoming, Notice, NoticeKind
from bot.guards.steps import Rejection
from bot.i18n import Language, text
from bot.media.detect import detect

__all__ = ["checked_media"]


def checked_media(
    message: Incoming, settings: MediaSettings, lang: Language
) -> Rejection | tuple[Attachment, ...]:
    """The message's files with their types from their bytes, or why the message stops here.

    The first file that fails decides the notice; the message is not answered in part.
    """
    attachments = message.attachments
    if not attachments:
        return ()
    if not settings.enabled:
        return _stop("media_disabled", NoticeKind.UNSUPPORTED, lang)
    if len(attachments) > settings.max_files_per_message:
        return _stop(
            "media_too_many",
            NoticeKind.TOO_LONG,
            lang,
            count=len(attachments),
            limit=settings.max_files_per_message,
        )
    typed: list[Attachment] = []
    for attachment in attachments:
        checked = _checked(attachment, settings, lang)
        if isinstance(checked, Rejection):
            return checked
        typed.append(checked)
    return tuple(typed)


def _checked(attachment: Attachment, settings: MediaSettings, lang: Language) -> Rejection | Attachment:
    name = attachment.name or text(lang, "media_file")
    size = max(attachment.size, len(attachment.data))
    if attachment.problem is AttachmentProblem.TOO_LARGE or size > settings.max_bytes:
        return _stop(
            "media_too_large",
            NoticeKind.TOO_LONG,
            lang,
            name=name,
            size=_human(size),
            limit=format_size(settings.max_bytes),
        )
    if attachment.problem is AttachmentProblem.UNAVAILABLE or not attachment.data:
        return _stop("media_unavailable", NoticeKind.UNAVAILABLE, lang, name=name)
    found = detect(attachment.data, claim=attachment.mime_type, name=attachment.name)
    if found.misnamed:
        return _stop("media_misnamed", NoticeKind.UNSUPPORTED, lang, name=name, type=found.mime_type)
    if found.family is None:
        return _stop("media_unsupported", NoticeKind.UNSUPPORTED, lang, name=name, type=found.mime_type)
    return replace(attachment, mime_type=found.mime_type, size=len(attachment.data))


def _human(size: int) -> str:
    """A size as people read it: ``21.3 MB``, ``512 KB``."""
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def _stop(key: str, kind: NoticeKind, lang: Language, **values: object) -> Rejection:
    return Rejection(key, Notice(kind, text(lang, key, **values)))

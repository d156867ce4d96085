"""The media side of an answer: the new message's files made into parts, the kept files of the exchanges
in the window sent again, and the Files API copies no exchange keeps handed to the janitor."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from bot.clock import Clock
from bot.config import MediaSettings
from bot.domain import Attachment, Notice, NoticeKind
from bot.i18n import Language, text
from bot.llm.errors import BadRequestError, GeminiError
from bot.llm.files import FilesApi
from bot.llm.types import LlmRequest, MediaPart
from bot.media.janitor import MediaJanitor
from bot.media.kinds import media_kind
from bot.media.prepare import InlineBudget, PreparedMedia, prepare_media, resent_media
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.store.conversations import Exchange
from bot.store.media import MediaStore

__all__ = ["DEFAULT_UPLOAD_GRACE", "MediaKeeper"]

log = get_logger(__name__)

DEFAULT_UPLOAD_GRACE: Final = timedelta(minutes=15)


class MediaKeeper:
    """Files into requests and out again. Without a Files API client every file goes inline; without a
    store nothing is kept for later turns."""

    def __init__(
        self,
        settings: MediaSettings,
        clock: Clock,
        metrics: Metrics,
        *,
        files: FilesApi | None = None,
        store: MediaStore | None = None,
        janitor: MediaJanitor | None = None,
        upload_grace: timedelta = DEFAULT_UPLOAD_GRACE,
    ) -> None:
        """``upload_grace``: longer than any answer can take; a copy uploaded for a message is deleted
        that long after its upload unless the message's exchange keeps it (should the process die)."""
        self._upload_grace = upload_grace
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._files = files
        self._store = store
        self._janitor = janitor

    @property
    def keeps(self) -> bool:
        """Whether files are kept with their exchanges for later turns."""
        return bool(self._settings.keep_in_context) and self._store is not None

    async def prepare(self, attachments: Sequence[Attachment], budget: InlineBudget) -> PreparedMedia:
        """The parts of the new message's files (raises bot.media.prepare.MediaUploadError)."""
        if not attachments:
            return PreparedMedia()
        noted = self._queue_upload if self._store is not None else None
        prepared = await prepare_media(attachments, self._settings, self._files, budget, noted)
        for part, route in zip(prepared.parts, prepared.routes, strict=True):
            self._metrics.media_files.labels(media_kind(part.mime_type), route).inc()
        return prepared

    async def _queue_upload(self, file_name: str) -> None:
        assert self._store is not None
        now = self._clock.now()
        try:
            await self._store.queue_upload(file_name, now, now + self._upload_grace)
        except Exception:  # the answer goes on; Gemini deletes the copy itself when it expires
            log.exception("media.queue_failed", files=1)

    def resent(
        self, history: Sequence[Exchange], budget: InlineBudget, lang: Language
    ) -> list[tuple[tuple[MediaPart, ...], str]]:
        """For each exchange of ``history`` (oldest first): its files' parts and a note on those gone.
        The newest exchanges come first for the inline budget."""
        if not self.keeps:
            return [((), "") for _ in history]
        now = self._clock.now()
        found = [resent_media(h.media, now, budget, lang) for h in reversed(history)]
        return found[::-1]

    async def gone(self, file_uris: Sequence[str]) -> None:
        """Gemini no longer holds these kept files (deleted before their expiry): later requests leave
        them out with a note, as they do expired ones."""
        if self._store is None or not file_uris:
            return
        try:
            await self._store.expire_references(file_uris)
        except Exception:
            log.exception("media.expire_failed", files=len(file_uris))

    async def failure_notice(
        self, exc: GeminiError, request: LlmRequest, media: PreparedMedia, lang: Language
    ) -> Notice | None:
        """The notice for Gemini refusing a file (a 400, or a file it no longer holds), None for other
        failures. An earlier file Gemini no longer holds is left out from now on: the message may be
        sent again."""
        if not isinstance(exc, BadRequestError) or exc.during_stream:
            return None
        gone = exc.file_gone
        earlier = _earlier_files(request, gone) if gone is not None else []
        if earlier:
            await self.gone(earlier)
            return Notice(NoticeKind.BAD_REQUEST, text(lang, "media_earlier_gone"))
        if not media.parts:
            return None
        reason = exc.message.strip().splitlines()[0][:160] if exc.message.strip() else "400"
        return Notice(NoticeKind.BAD_REQUEST, text(lang, "media_rejected", reason=reason))

    def erased(self) -> None:
        """Exchanges were erased (/forget, /reset): their files' Files API copies are deleted now."""
        if self._janitor is not None:
            self._janitor.wake()

    async def release(self, prepared: PreparedMedia, *, kept: bool) -> None:
        """Delete the Files API copies made for a message now unless its exchange keeps them (saving the
        exchange took them off the queue they joined at upload)."""
        if kept or not prepared.uploaded or self._store is None:
            return
        try:
            await self._store.delete_now(prepared.uploaded, self._clock.now())
        except Exception:  # Gemini deletes them by itself when they expire
            log.exception("media.queue_failed", files=len(prepared.uploaded))
            return
        if self._janitor is not None:
            self._janitor.wake()


def _earlier_files(request: LlmRequest, file_id: str) -> list[str]:
    """The URIs of the earlier exchanges' Files API copies in ``request`` (only ``file_id``'s, if named)."""
    uris = [m.file_uri for c in request.contents[:-1] for m in c.attachments if m.file_uri]
    named = [uri for uri in uris if file_id and uri.rstrip("/").endswith(f"files/{file_id}")]
    return named or uris

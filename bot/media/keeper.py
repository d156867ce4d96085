"""The media side of an answer: the new message's files made into parts, the kept files of the exchanges
in the window sent again, and the Files API copies no exchange keeps handed to the janitor."""

from __future__ import annotations

from collections.abc import Sequence

from bot.clock import Clock
from bot.config import MediaSettings
from bot.domain import Attachment
from bot.i18n import Language
from bot.llm.files import FilesApi
from bot.llm.types import MediaPart
from bot.media.janitor import MediaJanitor
from bot.media.kinds import media_kind
from bot.media.prepare import InlineBudget, PreparedMedia, prepare_media, resent_media
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.store.conversations import Exchange
from bot.store.media import MediaStore

__all__ = ["MediaKeeper"]

log = get_logger(__name__)


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
    ) -> None:
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
        prepared = await prepare_media(attachments, self._settings, self._files, budget)
        for part, route in zip(prepared.parts, prepared.routes, strict=True):
            self._metrics.media_files.labels(media_kind(part.mime_type), route).inc()
        return prepared

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

    def erased(self) -> None:
        """Exchanges were erased (/forget, /reset): their files' Files API copies are deleted now."""
        if self._janitor is not None:
            self._janitor.wake()

    async def release(self, prepared: PreparedMedia, *, kept: bool) -> None:
        """Queue the Files API copies made for a message for deletion unless its exchange keeps them."""
        if kept or not prepared.uploaded or self._store is None:
            return
        try:
            await self._store.queue_deletions(prepared.uploaded, self._clock.now())
        except Exception:  # Gemini deletes them by itself when they expire
            log.exception("media.queue_failed", files=len(prepared.uploaded))
            return
        if self._janitor is not None:
            self._janitor.wake()

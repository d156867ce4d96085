"""Deleting the Files API copies of erased files: the queue in ``media_deletions`` worked until each copy
is gone, retried with a growing delay; the queue is in the database, so a restart loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Final

from bot.clock import Clock
from bot.llm.files import FilesApi
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.store.media import MediaStore

__all__ = ["MediaJanitor"]

log = get_logger(__name__)

_FIRST_RETRY: Final = timedelta(seconds=30)
_LONGEST_RETRY: Final = timedelta(hours=1)


class MediaJanitor:
    """Works the queue of Files API copies to delete: at once when woken, else every ``interval``."""

    def __init__(
        self, store: MediaStore, files: FilesApi, clock: Clock, metrics: Metrics, interval: float = 30.0
    ) -> None:
        self._store = store
        self._files = files
        self._clock = clock
        self._metrics = metrics
        self._interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: work the queue now rather than at the next interval."""
        self._wake.set()

    async def sweep(self) -> int:
        """Try every deletion due now; returns how many copies are gone."""
        gone = 0
        while due := await self._store.due_deletions(self._clock.now()):
            progressed = False
            for pending in due:
                if await self._files.delete(pending.file_name):
                    await self._store.deletion_done(pending.id)
                    self._metrics.media_deletions.labels("deleted").inc()
                    gone += 1
                    progressed = True
                    continue
                delay = min(_FIRST_RETRY * 2**pending.attempts, _LONGEST_RETRY)
                await self._store.deletion_failed(pending.id, self._clock.now() + delay)
                self._metrics.media_deletions.labels("retry").inc()
                log.warning("media.delete_failed", attempts=pending.attempts + 1)
            if not progressed:
                break
        return gone

    async def run_forever(self) -> None:
        """Sweep whenever woken, and every ``interval`` seconds (a failed sweep is logged and retried)."""
        while True:
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("media.sweep_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

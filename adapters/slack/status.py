"""The status line of an assistant thread ("is thinking…") while an answer is being written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from adapters.slack.errors import CALL_ERRORS, UNAVAILABLE_ERRORS, reason
from bot.observability.logs import get_logger

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = get_logger(__name__)


class StatusHost(Protocol):
    """What the status needs of the adapter: the client for skippable calls and whether Slack offers it."""

    optional_client: AsyncWebClient
    status_available: bool


class ThreadStatus:
    """Shows ``text`` as a thread's status and clears it once; a failing call never stops the answer."""

    def __init__(self, host: StatusHost, channel: str, thread_ts: str | None, text: str) -> None:
        self._host = host
        self._channel = channel
        self._thread = thread_ts
        self._text = text
        self._shown = False

    async def show(self) -> bool:
        """Set the status; False when the thread has none or Slack refused it (show a placeholder instead)."""
        if self._thread is None or not self._host.status_available:
            return False
        try:
            await self._host.optional_client.assistant_threads_setStatus(
                channel_id=self._channel, thread_ts=self._thread, status=self._text
            )
        except CALL_ERRORS as exc:
            if reason(exc) in UNAVAILABLE_ERRORS:
                self._host.status_available = False
            log.info("slack.status_failed", error=reason(exc))
            return False
        self._shown = True
        return True

    async def clear(self) -> None:
        """Clear the status once the answer or notice is shown (also when it could not be)."""
        if not self._shown:
            return
        self._shown = False
        try:
            await self._host.optional_client.assistant_threads_setStatus(
                channel_id=self._channel, thread_ts=self._thread or "", status=""
            )
        except CALL_ERRORS as exc:
            log.info("slack.status_failed", error=reason(exc))

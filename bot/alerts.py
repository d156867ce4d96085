"""Admin alerts: the core publishes, adapters subscribe and deliver to their configured admins.

``publish`` is synchronous and never blocks the answer being produced: each subscriber runs in its own
task. The same alert kind goes out at most once per ``interval`` (a bad key fails every message; admins
need one message about it, not hundreds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.domain import AdminAlert
from bot.observability.logs import get_logger

log = get_logger(__name__)

AlertHandler = Callable[[AdminAlert], Awaitable[None]]


class AlertHub:
    """Fan-out of :class:`AdminAlert` to async subscribers, rate-limited per alert kind."""

    def __init__(self, clock: Clock, *, interval: float = 600.0) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[str, float] = {}
        self._handlers: list[AlertHandler] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.published: list[AdminAlert] = []
        """Every alert that went out (suppressed repeats excluded), oldest first; kept small."""

    def subscribe(self, handler: AlertHandler) -> Callable[[], None]:
        """Deliver every future alert to ``handler``; returns a function that unsubscribes it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def publish(self, alert: AdminAlert) -> bool:
        """Send ``alert`` to every subscriber unless its kind went out less than ``interval`` ago."""
        now = self._clock.monotonic()
        last = self._last.get(alert.kind)
        if last is not None and now - last < self._interval:
            log.info("admin_alert.suppressed", kind=alert.kind)
            return False
        self._last[alert.kind] = now
        self.published.append(alert)
        del self.published[:-100]
        log.error("admin_alert", kind=alert.kind, text=alert.text, subscribers=len(self._handlers))
        for handler in list(self._handlers):
            task = asyncio.get_running_loop().create_task(self._deliver(handler, alert))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    async def _deliver(self, handler: AlertHandler, alert: AdminAlert) -> None:
        try:
            await handler(alert)
        except Exception:
            log.exception("admin_alert.delivery_failed", kind=alert.kind)

    async def drain(self) -> None:
        """Wait until every delivery started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop: pending deliveries get a moment to finish, then are cancelled."""
        self._handlers.clear()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

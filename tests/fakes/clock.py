"""The one test clock: a ``bot.clock.Clock`` whose time tests move by hand instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class FakeClock:
    """Wall and monotonic time that tests move; ``sleep`` records the wait, moves time and returns at once.

    ``now()`` is :attr:`current`, which tests may also set. Monotonic time is the real one plus every
    advance and sleep, so latencies stay real while backoffs and cool-downs cost nothing; with
    ``frozen=True`` it starts at 1000 and only advances and sleeps move it (exact arithmetic).
    """

    def __init__(self, start: datetime = START, *, frozen: bool = False) -> None:
        self.current = start
        self.offset = 1000.0 if frozen else 0.0
        self.frozen = frozen
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The wall time tests set."""
        return self.current

    def monotonic(self) -> float:
        """Seconds that only go forward: the real ones (unless frozen) plus every advance."""
        return self.offset + (0.0 if self.frozen else time.monotonic())

    def advance(self, by: float | timedelta) -> None:
        """Move wall and monotonic time forward by ``by`` (seconds or a timedelta)."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        self.current += timedelta(seconds=seconds)
        self.offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, advance by it, and only let other tasks run."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

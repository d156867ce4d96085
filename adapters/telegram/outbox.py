"""Outbound flood control towards the Bot API, and calls that survive 429s and brief network trouble."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import TypeVar

from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.warnings import PTBDeprecationWarning

from bot.clock import Clock
from bot.config import OutboundTelegramLimits
from bot.observability.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

MAX_FLOOD_WAIT = 900.0
"""Seconds a message may be held back by 429s before it is given up (and logged)."""

TYPING_REFRESHES = 20
"""Typing refreshes a second for the whole bot, whatever ``telegram.rate_limit`` says: a refresh only keeps
an indicator alive, so under a burst (1,000 chats waiting, each refreshed every 4 s) it must not take the
CPU and connections the answers need. The first typing action of an answer is not limited."""


class Scope(Enum):
    """Which flood limits a call counts against."""

    MESSAGE = "message"  # sendMessage, editMessageText: per chat, per group and overall
    DRAFT = "draft"  # sendMessageDraft: overall only (a streaming preview, not a message)
    ACTION = "action"  # sendChatAction: not counted; skipped while the chat is paused by a 429
    REFRESH = "refresh"  # a repeated sendChatAction: at most TYPING_REFRESHES a second, bot-wide


class ChatUnreachableError(Exception):
    """The chat cannot be written to (the user blocked the bot, or the bot was removed)."""


def retry_after_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds, whether PTB gives an int or a timedelta."""
    with warnings.catch_warnings():
        # PTB < 23 warns that the int form is deprecated; either form is handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _Stamp:
    """When one call counted: its start, moved to its end once the answer arrived."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


Ticket = list[_Stamp]
"""The stamps of one call, to be moved to its completion time."""


class SlidingWindow:
    """At most ``limit`` events in any ``period`` seconds.

    An event counts from its start until ``period`` after its completion: Telegram counts a request when
    it arrives, somewhere in between, so counting either end alone lets delayed requests bunch up.
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._stamps: list[_Stamp] = []

    @classmethod
    def per(cls, rate: float, period: float) -> SlidingWindow | None:
        """``rate`` events per ``period`` seconds; None when ``rate`` is 0 (no limit)."""
        if rate <= 0:
            return None
        if rate >= 1:
            return cls(int(rate), period * int(rate) / rate)
        return cls(1, period / rate)

    def wait(self, now: float, *, keep_free: int = 0) -> float:
        """Seconds until one more event fits with ``keep_free`` slots still left (0 = now)."""
        horizon = now - self.period
        self._stamps = [s for s in self._stamps if s.at > horizon]
        if len(self._stamps) + keep_free < self.limit:
            return 0.0
        ordered = sorted(s.at for s in self._stamps)
        return ordered[min(len(ordered) - 1, keep_free)] + self.period - now

    def record(self, now: float) -> _Stamp:
        """Count one event starting at ``now``."""
        stamp = _Stamp(now)
        self._stamps.append(stamp)
        return stamp

    def idle(self, now: float) -> bool:
        """Whether the window is empty (can be forgotten)."""
        return all(s.at <= now - self.period for s in self._stamps)


class FloodControl:
    """Telegram's outbound limits (per chat, per group, overall), plus pauses ordered by 429s.

    ``acquire`` waits for a slot; ``try_acquire`` takes one only when nobody is waiting, so optional
    calls (streaming previews, typing) never delay the messages that complete an answer.
    """

    def __init__(self, limits: OutboundTelegramLimits, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._global = SlidingWindow.per(limits.global_per_second, 1.0)
        self._refreshes = SlidingWindow(TYPING_REFRESHES, 1.0)
        self._chats: dict[int, SlidingWindow] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._paused: dict[int | None, float] = {}  # chat id (None = every chat) -> monotonic time
        self._waiting = 0

    def _window(
        self, table: dict[int, SlidingWindow], chat_id: int, rate: float, period: float
    ) -> SlidingWindow | None:
        window = table.get(chat_id)
        if window is None:
            window = SlidingWindow.per(rate, period)
            if window is None:
                return None
            if len(table) > 1024:  # forget idle chats so the tables stay small
                now = self._clock.monotonic()
                for key in [k for k, w in table.items() if w.idle(now)]:
                    del table[key]
            table[chat_id] = window
        return window

    def _windows(self, chat_id: int, scope: Scope) -> list[SlidingWindow]:
        if scope is Scope.ACTION:
            return []
        if scope is Scope.REFRESH:
            return [self._refreshes]
        windows: list[SlidingWindow | None] = [self._global]
        if scope is Scope.MESSAGE:
            windows.append(self._window(self._chats, chat_id, self._limits.per_chat_per_second, 1.0))
            if chat_id < 0:
                windows.append(self._window(self._groups, chat_id, self._limits.per_group_per_minute, 60.0))
        return [w for w in windows if w is not None]

    def _wait(self, chat_id: int, scope: Scope, now: float, *, optional: bool = False) -> float:
        paused = max(self._paused.get(chat_id, 0.0), self._paused.get(None, 0.0)) - now
        # Optional calls may use only half of a message window, so a streamed preview cannot use up a
        # group's twenty messages a minute and hold back the answer's final message.
        keep_free = optional and scope is not Scope.REFRESH
        return max(
            [
                paused,
                *(
                    w.wait(now, keep_free=w.limit // 2 if keep_free else 0)
                    for w in self._windows(chat_id, scope)
                ),
            ]
        )

    def _take(self, chat_id: int, scope: Scope, now: float) -> Ticket:
        return [window.record(now) for window in self._windows(chat_id, scope)]

    def delay(self, chat_id: int, scope: Scope = Scope.MESSAGE) -> float:
        """Seconds until a call in ``scope`` to ``chat_id`` would fit (0 = now)."""
        return max(0.0, self._wait(chat_id, scope, self._clock.monotonic()))

    async def acquire(self, chat_id: int, scope: Scope = Scope.MESSAGE) -> Ticket:
        """Wait until a call in ``scope`` to ``chat_id`` fits every limit, and count it."""
        self._waiting += 1
        try:
            while True:
                now = self._clock.monotonic()
                delay = self._wait(chat_id, scope, now)
                if delay <= 0:
                    return self._take(chat_id, scope, now)
                await self._clock.sleep(delay)
        finally:
            self._waiting -= 1

    def try_acquire(self, chat_id: int, scope: Scope) -> Ticket | None:
        """Count an optional call only if it fits in half the limits now and nobody waits (else None)."""
        now = self._clock.monotonic()
        if (self._waiting and scope in (Scope.MESSAGE, Scope.DRAFT)) or self._wait(
            chat_id, scope, now, optional=True
        ) > 0:
            return None
        return self._take(chat_id, scope, now)

    def done(self, ticket: Ticket) -> None:
        """The call's answer arrived: it keeps counting for a period from now."""
        now = self._clock.monotonic()
        for stamp in ticket:
            stamp.at = max(stamp.at, now)

    def pause(self, chat_id: int | None, seconds: float) -> None:
        """Send nothing to ``chat_id`` (None: to anyone) for ``seconds`` (after a 429)."""
        until = self._clock.monotonic() + seconds
        self._paused[chat_id] = max(self._paused.get(chat_id, 0.0), until)
        if len(self._paused) > 1024:
            now = self._clock.monotonic()
            for key in [k for k, t in self._paused.items() if t < now]:
                del self._paused[key]


class Outbox:
    """Every call that writes to a chat: flood control, 429s waited out, blocked chats remembered."""

    def __init__(self, flood: FloodControl) -> None:
        self.flood = flood
        self._unreachable: set[int] = set()

    def unreachable(self, chat_id: int) -> bool:
        """Whether the chat refused the bot (until it writes again)."""
        return chat_id in self._unreachable

    def reachable_again(self, chat_id: int) -> None:
        """The chat wrote to the bot: try sending to it again."""
        self._unreachable.discard(chat_id)

    async def call(
        self,
        chat_id: int,
        send: Callable[[], Awaitable[T]],
        *,
        scope: Scope = Scope.MESSAGE,
        optional: bool = False,
    ) -> T | None:
        """Run ``send`` when the limits allow; None when an optional call was skipped.

        A 429 pauses the chat for ``retry_after`` and the call is retried (optional calls are dropped
        instead). A 403 marks the chat unreachable (:class:`ChatUnreachableError`) and is not retried.
        """
        if chat_id in self._unreachable:
            raise ChatUnreachableError(str(chat_id))
        waited = 0.0
        network_failures = 0
        while True:
            if optional:
                ticket = self.flood.try_acquire(chat_id, scope)
                if ticket is None:
                    return None
            else:
                ticket = await self.flood.acquire(chat_id, scope)
            try:
                return await send()
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                self.flood.pause(chat_id, seconds + 0.1)
                log.warning("telegram.flood_wait", chat_id=chat_id, retry_after=seconds, optional=optional)
                waited += seconds
                if optional:
                    return None
                if waited > MAX_FLOOD_WAIT:
                    raise
            except Forbidden as exc:
                self._unreachable.add(chat_id)
                log.info("telegram.chat_unreachable", chat_id=chat_id, reason=exc.message)
                raise ChatUnreachableError(str(chat_id)) from exc
            except (BadRequest, ChatMigrated, TimedOut):
                # BadRequest is a NetworkError in PTB; a timed-out send may have been delivered.
                raise
            except NetworkError as exc:
                network_failures += 1
                if optional or network_failures >= 3:
                    raise
                log.warning("telegram.network_retry", chat_id=chat_id, error=exc.message)
                await asyncio.sleep(network_failures)
            finally:
                self.flood.done(ticket)

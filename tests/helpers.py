"""Small helpers shared by tests: driving the engine."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from bot.app import App
from bot.domain import (
    Delta,
    FinalAnswer,
    Incoming,
    MessageKind,
    Notice,
    NoticeKind,
    Platform,
    ReplyEvent,
    Typing,
)

_ids = itertools.count(1)


def incoming(
    text: str = "hello",
    *,
    chat: str = "chat-1",
    user: str = "user-1",
    thread: str = "",
    event_id: str | None = None,
    private: bool = True,
    addressed: bool = True,
    command: str | None = None,
    args: str = "",
    name: str = "",
    platform: Platform = Platform.TELEGRAM,
    language: str | None = None,
    kind: MessageKind = MessageKind.TEXT,
    as_chat: bool = False,
    command_prefix: str = "/",
) -> Incoming:
    """An Incoming with sensible defaults and a fresh event id."""
    return Incoming(
        platform=platform,
        chat_key=chat,
        thread_key=thread,
        user_id=user,
        user_name=name,
        text=text,
        event_id=event_id or f"evt-{next(_ids)}",
        is_private=private,
        addressed_to_bot=addressed,
        command=command,
        command_args=args,
        language=language,
        kind=kind,
        sent_as_chat=as_chat,
        command_prefix=command_prefix,
    )


async def collect(app: App, message: Incoming) -> list[ReplyEvent]:
    """Every event of the engine's answer to ``message``."""
    return [event async for event in app.engine.handle(message)]


def terminal(events: list[ReplyEvent]) -> FinalAnswer | Notice:
    """The one terminal event of an answer (asserting there is exactly one, and last)."""
    ends = [e for e in events if isinstance(e, FinalAnswer | Notice)]
    assert len(ends) == 1, f"expected exactly one terminal event, got {events!r}"
    assert events[-1] is ends[0]
    return ends[0]


def answer_text(events: list[ReplyEvent]) -> str:
    """The final reply text (asserting the answer is a FinalAnswer)."""
    end = terminal(events)
    assert isinstance(end, FinalAnswer), f"expected a reply, got {end!r}"
    return end.text


def notice_kind(events: list[ReplyEvent]) -> NoticeKind:
    """The kind of the notice that ended the answer."""
    end = terminal(events)
    assert isinstance(end, Notice), f"expected a notice, got {end!r}"
    return end.kind


def deltas(events: list[ReplyEvent]) -> str:
    """The streamed text, joined."""
    return "".join(e.text for e in events if isinstance(e, Delta))


def has_typing(events: list[ReplyEvent]) -> bool:
    """Whether the answer began with a typing indicator."""
    return any(isinstance(e, Typing) for e in events)


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (work a test started in the background); fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)

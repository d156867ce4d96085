"""The history window: stored exchanges + the new message -> Gemini contents."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.llm.types import ChatMessage, MediaPart


@dataclass(frozen=True, slots=True)
class PastExchange:
    """One stored exchange as the context builder needs it."""

    user_text: str
    model_text: str
    model_parts: tuple[Mapping[str, Any], ...] = ()  # sent instead of model_text when kept
    media: tuple[MediaPart, ...] = ()  # the files the user sent with it, sent again with its text


def window_size(history: Sequence[PastExchange], *, max_turns: int, budget: int) -> int:
    """How many of the newest exchanges of ``history`` (oldest first) stay in the window: at most
    ``max_turns``, and only while their text fits ``budget`` characters."""
    kept = 0
    for exchange in reversed(history[-max_turns:] if max_turns > 0 else []):
        size = len(exchange.user_text) + len(exchange.model_text)
        if size > budget:
            break
        budget -= size
        kept += 1
    return kept


def build_contents(
    history: Sequence[PastExchange],
    new_text: str,
    *,
    max_turns: int,
    max_chars: int,
    system_chars: int = 0,
    attachments: tuple[MediaPart, ...] = (),
) -> tuple[ChatMessage, ...]:
    """Alternating user/model contents for the newest exchanges that fit, then the new message.

    ``history`` is oldest first. At most ``max_turns`` exchanges are kept, and older ones are dropped
    while the total text (system instruction and new message included) would exceed ``max_chars``.
    """
    budget = max_chars - system_chars - len(new_text)
    kept = window_size(history, max_turns=max_turns, budget=budget)
    contents: list[ChatMessage] = []
    for exchange in history[len(history) - kept :]:
        contents.append(ChatMessage(role="user", text=exchange.user_text, attachments=exchange.media))
        contents.append(ChatMessage(role="model", text=exchange.model_text, parts=exchange.model_parts))
    contents.append(ChatMessage(role="user", text=new_text, attachments=attachments))
    return tuple(contents)


MAX_NAME_CHARS = 64
# Colons of every script: a name must not end its own "Name:" prefix early.
_COLONS = re.compile(r"[:\uff1a\ufe55\ufe13\ua789\u02d0\u2236]")


def speaker_name(display_name: str) -> str:
    """``display_name`` made safe as a speaker prefix: control, format and separator characters (line
    breaks, bidi overrides, zero-width) and colons become spaces, runs of spaces one, at most
    :data:`MAX_NAME_CHARS` characters. A name cannot start a line that reads as another speaker's."""
    spaced = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in display_name)
    return " ".join(_COLONS.sub(" ", spaced).split())[:MAX_NAME_CHARS].rstrip()


def speaker_prefixed(text: str, display_name: str, *, is_private: bool) -> str:
    """In group conversations each user text carries the sender's name, so the model can tell people apart."""
    name = speaker_name(display_name)
    if is_private or not name:
        return text
    return f"{name}: {text}"


def with_context(context_text: str, user_text: str) -> str:
    """The user text as sent to Gemini: after the text read for this message only (e.g. the messages of a
    thread to summarise), which is never stored with the exchange."""
    return f"{context_text}\n\n{user_text}" if context_text else user_text

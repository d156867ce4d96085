"""Platform-neutral values that flow between adapters and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Platform(StrEnum):
    """Where a message came from."""

    TELEGRAM = "telegram"
    SLACK = "slack"
    CONSOLE = "console"


class MessageKind(StrEnum):
    """What the user sent, as far as the engine cares."""

    TEXT = "text"
    UNSUPPORTED = "unsupported"  # voice, sticker, document...: answered with a notice


class AttachmentProblem(StrEnum):
    """Why an attachment has no bytes: the adapter could not or would not download it."""

    TOO_LARGE = "too_large"  # the platform declared a size over media.max_bytes: not downloaded
    UNAVAILABLE = "unavailable"  # the download failed


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the user sent with the message, as the adapter downloaded it.

    ``mime_type`` is the platform's claim ("" when it makes none); the core detects the type from the
    bytes where the claim is missing or generic. ``size`` is the declared size where the platform gives
    one before the download, else ``len(data)``. ``placeholder`` is the short marker the history shows
    for the file (``[voice note]``, ``[photo]``, ``[PDF report.pdf]``). ``problem`` is set, and ``data``
    empty, when the file was not downloaded.
    """

    mime_type: str
    data: bytes
    placeholder: str = "[image]"
    name: str = ""
    size: int = 0
    problem: AttachmentProblem | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One user message, normalized by an adapter.

    ``chat_key`` and ``thread_key`` together name the conversation. ``command`` is set by the adapter
    when the message is a command meant for this bot (``"reset"``, ``"stats"``...), already stripped of
    any ``/`` and ``@botname``; ``command_args`` holds the rest of the line; ``command_prefix`` is how
    commands are typed on the platform (for help texts). ``sent_as_chat`` marks a message posted on
    behalf of the chat itself (a Telegram group's anonymous admins): the chat's id, not the sender's, is
    looked up in the admin list. ``operator`` marks the person running this process (the console): an
    admin whatever the lists say. ``keep_history`` False (a Telegram inline query) answers without the
    conversation's history and stores no exchange; the guards, quota, budgets and audit apply all the same.

    ``context_text`` is text the adapter read for this message only (the messages of a thread or channel
    to summarise): it goes through the word filter, reaches Gemini with this message, and is never
    stored. ``context_problem``, when set, is the notice (already in the sender's language) for context
    that could not be read (e.g. a channel the bot is not in): it is the answer, and Gemini is not called.
    """

    platform: Platform
    chat_key: str
    user_id: str
    text: str
    event_id: str
    thread_key: str = ""
    user_name: str = ""
    is_private: bool = True
    addressed_to_bot: bool = True
    language: str | None = None
    command: str | None = None
    command_args: str = ""
    kind: MessageKind = MessageKind.TEXT
    attachments: tuple[Attachment, ...] = ()
    reply_ids: Mapping[str, str] = field(default_factory=dict)
    command_prefix: str = "/"
    sent_as_chat: bool = False
    keep_history: bool = True
    operator: bool = False
    context_text: str = ""
    context_problem: str = ""

    @property
    def conversation_key(self) -> tuple[str, str, str]:
        """The (platform, chat, thread) triple naming this message's conversation."""
        return (self.platform.value, self.chat_key, self.thread_key)


class NoticeKind(StrEnum):
    """Why the engine answered with a notice instead of (or after) a reply."""

    INFO = "info"  # command answers: help, reset, stats, forget
    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNSUPPORTED = "unsupported"
    UNREADABLE = (
        "unreadable"  # the context to read with the message (a channel to summarise) was not readable
    )
    FORBIDDEN = "forbidden"  # not allowed here / admins only
    NOT_ALLOWED_CHAT = "not_allowed_chat"
    RATE_LIMITED = "rate_limited"
    OVER_BUDGET = "over_budget"  # the sender used up a token budget of theirs
    QUOTA = "quota"
    FILTERED = "filtered"
    SAFETY = "safety"
    BAD_REQUEST = "bad_request"
    BAD_KEY = "bad_key"
    MISCONFIGURED = "misconfigured"  # Gemini refuses the bot's configuration: the admins must fix it
    UNAVAILABLE = "unavailable"
    CUT = "cut"  # the streamed reply stopped early; what was shown stays
    TRUNCATED = "truncated"  # MAX_TOKENS: the reply is complete but was cut at the length limit
    RESEND = "resend"  # the process died before answering: please send it again
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Typing:
    """The engine is working on an answer; show a typing indicator."""


@dataclass(frozen=True, slots=True)
class Delta:
    """More reply text (streaming). ``text`` is only the new part; ``last`` when the reply's stream has
    ended with it (the terminal event follows without more text, so a preview of it would be redundant)."""

    text: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """A short message from the bot itself rather than from Gemini."""

    kind: NoticeKind
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A web page an answer refers to, with the title to show for it."""

    uri: str
    title: str


@dataclass(frozen=True, slots=True)
class Sourcing:
    """Where an answer came from and how Gemini got there, for the adapter to show with it.

    ``sources`` are numbered in order (the answer's ``[n]`` markers link to them); ``searches`` link to
    the results of each search Gemini ran; ``failed`` is one short line naming links Gemini could not
    open; ``thoughts`` is the thought summary, shown collapsed above the answer. The labels are in the
    user's language.
    """

    sources: tuple[Link, ...] = ()
    searches: tuple[Link, ...] = ()
    failed: str = ""
    thoughts: str = ""
    sources_label: str = "Sources"
    searches_label: str = "Searched"
    thoughts_label: str = "Thoughts"

    def __bool__(self) -> bool:
        return bool(self.sources or self.searches or self.failed or self.thoughts)


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """The complete reply text. ``notice`` is appended to the same answer when set (e.g. cut short);
    ``sourcing``, when set, is shown with it (sources under it, the thought summary above)."""

    text: str
    notice: Notice | None = None
    sourcing: Sourcing | None = None


ReplyEvent = Typing | Delta | FinalAnswer | Notice
"""Every answer is a stream of ``Typing``/``Delta`` events ended by exactly one ``FinalAnswer`` or
``Notice``."""


@dataclass(frozen=True, slots=True)
class AdminAlert:
    """Something an operator must hear about (e.g. a bad API key); adapters deliver it to admins."""

    kind: str
    text: str


VoteValue = Literal["up", "down"]
"""A user's vote on an answer: 👍 (up) or 👎 (down)."""


ANSWER_MESSAGE = "answer"
"""The key in ``FollowUp.reply_ids`` of the platform message a dead process was writing the answer in."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A message a dead process accepted but never answered, and the notice its sender is owed.

    ``reply_ids`` are the message's own (``Incoming.reply_ids``) plus, under :data:`ANSWER_MESSAGE`, the
    id of the half-written answer when one had been posted.
    """

    platform: Platform
    chat_key: str
    thread_key: str
    user_id: str
    reply_ids: Mapping[str, str]
    notice: Notice

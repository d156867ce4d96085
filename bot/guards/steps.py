"""The engine's checks before a message reaches Gemini, one function per step, each saying how a message
it stops ends (its outcome) and what the sender is told."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import Incoming, MessageKind, Notice, NoticeKind, Platform
from bot.guards.access import AccessPolicy
from bot.guards.blocklist import BlockList
from bot.guards.filter import TextFilter
from bot.guards.limits import RateLimiter
from bot.i18n import Language, format_wait, text
from bot.observability.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message a step stopped: its outcome, and the notice for the sender (None: no answer at all)."""

    outcome: str
    notice: Notice | None


async def blocked_rejection(
    message: Incoming, blocklist: BlockList | None, lang: Language
) -> Rejection | None:
    """A user an admin blocked from the admin page: refused as an access refusal is (but /forget in a
    private chat still works: erasure is a right; the console's operator is never blocked)."""
    if (
        blocklist is None
        or message.platform is Platform.CONSOLE
        or (message.command == "forget" and message.is_private)
        or not await blocklist.is_blocked(message.platform.value, message.user_id)
    ):
        return None
    if not message.is_private:
        return Rejection("blocked", None)
    return Rejection("blocked", Notice(NoticeKind.NOT_ALLOWED_CHAT, text(lang, "not_allowed_chat")))


def access_rejection(
    message: Incoming, access: AccessPolicy, *, is_admin: bool, lang: Language
) -> Rejection | None:
    """A message from a chat the bot does not serve: told so in a private chat, ignored in a group."""
    # Erasure is a right, not a service: /forget works in any private chat, allowed or not (the
    # sender may have talked to the bot in an allowed group).
    erasing = message.command == "forget" and message.is_private
    if is_admin or erasing or access.chat_allowed(message):
        return None
    notice = (
        Notice(NoticeKind.NOT_ALLOWED_CHAT, text(lang, "not_allowed_chat")) if message.is_private else None
    )
    return Rejection("not_allowed", notice)


def checked_text(
    message: Incoming,
    lang: Language,
    *,
    max_chars: int,
    text_filter: TextFilter | None,
    metrics: Metrics,
) -> Rejection | str:
    """The text to send on (the word filter may have masked it), or why the message stops here."""
    if message.kind is MessageKind.UNSUPPORTED:
        return Rejection("unsupported", Notice(NoticeKind.UNSUPPORTED, text(lang, "unsupported")))
    user_text = message.text.strip()
    if not user_text and not message.attachments:
        return Rejection("empty", Notice(NoticeKind.EMPTY, text(lang, "empty")))
    if len(user_text) > max_chars:
        notice = Notice(NoticeKind.TOO_LONG, text(lang, "too_long", length=len(user_text), limit=max_chars))
        return Rejection("too_long", notice)
    return _filtered(user_text, lang, text_filter, metrics)


def _filtered(
    checked: str, lang: Language, text_filter: TextFilter | None, metrics: Metrics
) -> Rejection | str:
    """``checked`` after the word filter (masked), or refused when the filter blocks it."""
    if text_filter is None or not checked:
        return checked
    verdict = text_filter.check(checked)
    if not verdict.flagged:
        return checked
    metrics.refusals.labels("filter").inc()
    if text_filter.action == "block":
        return Rejection("filtered", Notice(NoticeKind.FILTERED, text(lang, "filtered")))
    return verdict.text


def checked_context(
    message: Incoming, lang: Language, *, text_filter: TextFilter | None, metrics: Metrics
) -> Rejection | str:
    """The context text read with the message (e.g. a thread to summarise) after the word filter, or why
    the message stops here: unreadable context, or a blocked word in what was read."""
    if message.context_problem:
        return Rejection("context_unreadable", Notice(NoticeKind.UNREADABLE, message.context_problem))
    return _filtered(message.context_text, lang, text_filter, metrics)


async def rate_rejection(
    message: Incoming, limiter: RateLimiter, metrics: Metrics, lang: Language
) -> Rejection | None:
    """A message over the sender's or the chat's rate limit, told when it may try again."""
    refusal = await limiter.acquire(message)
    if refusal is None:
        return None
    metrics.refusals.labels(f"rate_limit_{refusal.scope}").inc()
    key = "rate_limited" if refusal.scope == "user" else "rate_limited_chat"
    notice = Notice(NoticeKind.RATE_LIMITED, text(lang, key, retry=format_wait(refusal.retry_after, lang)))
    return Rejection("rate_limited", notice)

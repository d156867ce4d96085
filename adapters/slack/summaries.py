"""A summary request completed with what it asks to summarise: the thread or channel messages read from
Slack become the message's context text (sent to Gemini with it, never stored), or, when they cannot be
read, the notice that answers it. The engine then answers it like any message (filter, limits, quota,
budgets, audit)."""

from __future__ import annotations

from dataclasses import replace

from adapters.slack.assistant import AssistantPanel, asks_for_channel_summary
from adapters.slack.errors import CALL_ERRORS, reason
from adapters.slack.history import HistoryReader, Reading, Unreadable
from adapters.slack.normalize import Job
from bot.domain import Incoming
from bot.i18n import Language, text
from bot.observability.logs import get_logger

log = get_logger(__name__)


def newest_that_fit(lines: list[str], budget: int) -> list[str]:
    """The newest of ``lines`` (oldest first) whose text, one per line, fits ``budget`` characters."""
    kept: list[str] = []
    for line in reversed(lines):
        budget -= len(line) + 1
        if budget < 0:
            break
        kept.append(line)
    return kept[::-1]


async def with_read_context(
    job: Job,
    incoming: Incoming,
    lang: Language,
    *,
    history: HistoryReader,
    panel: AssistantPanel,
    budget: int,
) -> Incoming:
    """``incoming`` with the messages its job asks to summarise (or why they could not be read)."""
    reading: Reading | None = job.reading
    if reading is None and job.assistant and asks_for_channel_summary(incoming.text):
        found = await panel.channel_reading(job.channel, job.thread_ts or "", lang)
        if isinstance(found, str):
            return replace(incoming, context_problem=found)
        reading = found
    if reading is None:
        return incoming
    if not incoming.text:
        incoming = replace(incoming, text=text(lang, "summary_request"))
    try:
        messages = await history.read(reading)
    except Unreadable as exc:
        log.info("slack.summary_unreadable", error=exc.code)
        return replace(incoming, context_problem=text(lang, "summary_not_in_channel"))
    except CALL_ERRORS as exc:
        log.warning("slack.summary_read_failed", error=reason(exc))
        return replace(incoming, context_problem=text(lang, "summary_failed"))
    if not messages:
        return replace(incoming, context_problem=text(lang, "summary_empty"))
    # The oldest messages give way when all of them would not fit in the request's context.
    lines = newest_that_fit(await history.transcript(messages), budget - len(incoming.text) - 200)
    if not lines:
        return replace(incoming, context_problem=text(lang, "summary_failed"))
    if reading.thread_ts is None:
        header = text(lang, "summary_channel_header", count=len(lines))
    elif len(lines) < len(messages):
        header = text(lang, "summary_thread_tail_header", count=len(lines))
    else:
        header = text(lang, "summary_thread_header")
    log.info("slack.summary_read", messages=len(messages), sent=len(lines))
    return replace(incoming, context_text="\n".join([header, *lines]))

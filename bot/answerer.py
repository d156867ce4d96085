"""One answer from Gemini: the conversation's context from the store, the request, the streamed answer under
the answer policy and the reply filter, and the exchange stored in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from bot.chat_settings import ChatSettingsBook
from bot.clock import Clock
from bot.config import Settings
from bot.context import speaker_prefixed
from bot.domain import Attachment, Delta, FinalAnswer, Incoming, Notice, NoticeKind, ReplyEvent, Typing
from bot.guards.budgets import BudgetGuard
from bot.guards.filter import StreamScreen, TextFilter
from bot.i18n import Language, text
from bot.llm.errors import GeminiError, ResponseBlockedError
from bot.llm.notices import failure_notice
from bot.llm.policy import AnswerPolicy, QuotaExceededError
from bot.llm.types import LlmRequest, Usage
from bot.media.keeper import MediaKeeper
from bot.media.prepare import InlineBudget, MediaUploadError, PreparedMedia
from bot.memory import ConversationMemory
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.outcomes import OutcomeAccounting, Progress
from bot.request_builder import RequestBuilder
from bot.sourcing import AnswerExtras
from bot.store import AuditRecord, CallRecord, Conversations
from bot.store.media import KeptMedia

log = get_logger(__name__)


@dataclass(slots=True)
class _Answer:
    """Gemini's answer as it streams in: its text parts, finish reason and token usage."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    extras: AnswerExtras = field(default_factory=AnswerExtras)  # tool parts, grounding, thoughts


class Answerer:
    """Answers one checked message with Gemini, in its conversation's context."""

    def __init__(
        self,
        *,
        settings: Settings,
        conversations: Conversations,
        policy: AnswerPolicy,
        clock: Clock,
        metrics: Metrics,
        outcomes: OutcomeAccounting,
        text_filter: TextFilter | None,
        chat_settings: ChatSettingsBook | None = None,
        budgets: BudgetGuard | None = None,
        memory: ConversationMemory | None = None,
        media: MediaKeeper | None = None,
    ) -> None:
        self._settings = settings
        self._media = media or MediaKeeper(settings.media, clock, metrics)
        self._conversations = conversations
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._outcomes = outcomes
        self._filter = text_filter
        self._budgets = budgets
        self._memory = memory
        self._requests = RequestBuilder(
            settings, conversations, clock, self._media, chat_settings=chat_settings, memory=memory
        )

    async def answer(
        self,
        message: Incoming,
        user_text: str,
        lang: Language,
        progress: Progress,
        attachments: tuple[Attachment, ...] = (),
    ) -> AsyncIterator[ReplyEvent]:
        """Answer ``user_text`` (checked) and ``attachments`` (typed by the media gate) in ``message``'s
        conversation: ``Typing``, ``Delta`` events, then one terminal ``FinalAnswer`` or ``Notice``; the
        exchange is stored in one transaction."""
        yield Typing()
        conversation_id: int | None = None
        if message.keep_history:
            conversation_id = await self._conversations.open_conversation(
                message.platform.value, message.chat_key, message.thread_key, self._clock.now()
            )
        sent_text = speaker_prefixed(user_text, message.user_name, is_private=message.is_private)
        budget = InlineBudget()
        media = await self._prepared(attachments, budget, progress, lang)
        if isinstance(media, Notice):
            yield media
            return
        request = await self._requests.build(
            message, sent_text, conversation_id, media=media, budget=budget, lang=lang
        )
        screen = self._reply_screen()
        answer = _Answer()
        try:
            async for delta in self._stream(request, screen, progress, answer):
                yield delta
        except GeminiError as exc:
            await self._failed(message, conversation_id, request, progress, media, exc=exc)
            event = self.failure_event(exc, progress, lang)
            yield await self._media.failure_notice(exc, request, media, lang) or event
            return
        except (asyncio.CancelledError, GeneratorExit):
            # Cut off (shutdown, the adapter gave up): the attempts made were counted by the quota and
            # are recorded all the same.
            await asyncio.shield(self._failed(message, conversation_id, request, progress, media))
            raise
        raw = "".join(answer.parts)
        reply = self._screened_reply(raw, screen, progress)
        if reply is None:
            await self._failed(message, conversation_id, request, progress, media)
            yield Notice(NoticeKind.FILTERED, text(lang, "reply_filtered"))
            return
        yield await self._finish(
            message,
            progress,
            answer,
            request=request,
            conversation_id=conversation_id,
            sent_text=sent_text,
            reply=reply,
            raw=raw,
            lang=lang,
            media=media,
        )

    async def _prepared(
        self, attachments: tuple[Attachment, ...], budget: InlineBudget, progress: Progress, lang: Language
    ) -> PreparedMedia | Notice:
        """The message's files as request parts, or the notice when one could not be uploaded."""
        try:
            return await self._media.prepare(attachments, budget)
        except MediaUploadError as exc:
            await self._media.release(PreparedMedia(uploaded=exc.uploaded), kept=False)
            progress.outcome = "media_upload_failed"
            return Notice(NoticeKind.UNAVAILABLE, text(lang, "media_upload_failed", name=exc.name))

    async def _failed(
        self,
        message: Incoming,
        conversation_id: int | None,
        request: LlmRequest,
        progress: Progress,
        media: PreparedMedia,
        *,
        exc: GeminiError | None = None,
    ) -> None:
        """A failed answer's accounting: the copies of its files released, the attempts counted against
        the sender's budget, the failure recorded."""
        await self._media.release(media, kept=False)
        await self._count_usage(message, progress)
        await self._outcomes.record_failure(message, conversation_id, request, progress, exc)

    async def _finish(
        self,
        message: Incoming,
        progress: Progress,
        answer: _Answer,
        *,
        request: LlmRequest,
        conversation_id: int | None,
        sent_text: str,
        reply: str,
        raw: str,
        lang: Language,
        media: PreparedMedia,
    ) -> FinalAnswer:
        """Store the exchange with its calls and audit records (one transaction), count the tools used, and
        the terminal event: the reply with its citations, sources and thought summary."""
        calls = self._outcomes.call_records(message, conversation_id, progress)
        audit = self._outcomes.audit_records(message, request, progress, answer.extras.tool_calls())
        if conversation_id is None:
            await self._outcomes.record(calls, audit)
        else:
            await self._save(
                message,
                progress,
                answer,
                conversation_id=conversation_id,
                sent_text=sent_text,
                reply=reply,
                raw=raw,
                calls=calls,
                audit=audit,
                media=media.kept if self._media.keeps else (),
            )
        await self._media.release(media, kept=conversation_id is not None and self._media.keeps)
        await self._count_usage(message, progress)
        if self._memory is not None and conversation_id is not None:
            self._memory.after_answer(
                conversation_id, message.platform.value, len(request.system_instruction or "")
            )
        self._outcomes.observe(progress)
        for tool, count in answer.extras.tool_calls().items():
            self._metrics.tool_calls.labels(tool).inc(count)
        progress.outcome = "answered"
        notice = None
        if answer.finish_reason == "MAX_TOKENS":
            notice = Notice(NoticeKind.TRUNCATED, text(lang, "truncated"))
        gemini = self._settings.gemini
        sourced = answer.extras.finish(
            reply, lang, max_sources=gemini.max_sources, show_thoughts=gemini.generation.show_thoughts
        )
        return FinalAnswer(sourced.text, notice, sourced.sourcing)

    async def _save(
        self,
        message: Incoming,
        progress: Progress,
        answer: _Answer,
        *,
        conversation_id: int,
        sent_text: str,
        reply: str,
        raw: str,
        calls: list[CallRecord],
        audit: list[AuditRecord],
        media: Sequence[KeptMedia],
    ) -> None:
        """The exchange with its calls, audit records and kept files, in one transaction."""
        await self._conversations.save_exchange(
            conversation_id=conversation_id,
            user_id=message.user_id,
            user_text=_stored_text(message, sent_text),
            model_text=reply,
            # The stored parts would hold the words the filter took out of the reply.
            model_parts=answer.extras.model_parts() if reply == raw else None,
            prompt_tokens=answer.usage.prompt_tokens,
            output_tokens=answer.usage.output_tokens + answer.usage.thoughts_tokens,
            finish_reason=answer.finish_reason,
            model=progress.attempts[-1].model if progress.attempts else self._policy.model,
            now=self._clock.now(),
            calls=calls,
            audit=audit,
            media=media,
        )

    async def _count_usage(self, message: Incoming, progress: Progress) -> None:
        """The sender's Gemini tokens, for their budget and /usage (a failure to count is logged)."""
        if self._budgets is None or not progress.attempts:
            return
        usages = [a.usage for a in progress.attempts]
        try:
            await self._budgets.count(message.platform.value, message.user_id, message.user_name, usages)
        except Exception:
            log.exception("usage.count_failed", platform=message.platform.value)

    async def _stream(
        self, request: LlmRequest, screen: StreamScreen | None, progress: Progress, answer: _Answer
    ) -> AsyncIterator[Delta]:
        """Gemini's answer into ``answer``, what the reply filter lets through shown as deltas."""
        async for chunk in self._policy.answer(request, progress.attempts.append):
            answer.extras.add(chunk)
            if chunk.usage is not None:
                answer.usage = chunk.usage
            if chunk.finish_reason:
                answer.finish_reason = chunk.finish_reason
            if not chunk.text:
                continue
            answer.parts.append(chunk.text)
            visible = screen.feed(chunk.text) if screen is not None else chunk.text
            if visible:
                progress.shown.append(visible)
                yield Delta(visible, last=chunk.finish_reason is not None)

    def _reply_screen(self) -> StreamScreen | None:
        """The streamed-reply screen of the word filter, when replies are checked."""
        if self._filter is None or not self._filter.check_replies:
            return None
        return self._filter.screen_stream()

    def _screened_reply(self, reply: str, screen: StreamScreen | None, progress: Progress) -> str | None:
        """The reply to store and show after the reply filter, None when the filter blocks it."""
        if screen is None:
            return reply
        rest = screen.finish()
        if screen.flagged and self._filter is not None:
            verdict = self._filter.check(reply)
            if self._filter.action == "block":
                progress.outcome = "reply_filtered"
                self._metrics.refusals.labels("filter_reply").inc()
                return None
            return verdict.text
        if rest:
            progress.shown.append(rest)
        return reply

    def failure_event(self, exc: GeminiError, progress: Progress, lang: Language) -> ReplyEvent:
        """What the sender is shown when Gemini failed with ``exc``: what was already shown stays."""
        progress.outcome = f"gemini_{exc.kind}"
        if isinstance(exc, QuotaExceededError):
            progress.outcome = "quota"
            if exc.before_gemini:  # a retry refused after Gemini was called is not a refusal "before Gemini"
                self._metrics.refusals.labels("quota").inc()
        notice = failure_notice(exc, lang)
        if progress.shown:
            # What was already shown stays; the user learns it was cut, in the same answer.
            partial = "".join(progress.shown)
            if isinstance(exc, ResponseBlockedError):
                return FinalAnswer(partial, notice)
            return FinalAnswer(partial, Notice(NoticeKind.CUT, text(lang, "cut")))
        return notice


def _stored_text(message: Incoming, sent_text: str) -> str:
    """The user's side of the exchange as stored: attachments by their placeholders, then the text."""
    if message.attachments:
        return " ".join([*(a.placeholder for a in message.attachments), sent_text]).strip()
    return sent_text

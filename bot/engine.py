"""The conversation pipeline: one incoming message in, one answer out as a stream of reply events.

Steps (DESIGN.md): per-chat order, inbox dedup, access, commands, input checks, rate limits, the word
filter, context from the store, the Gemini answer under the policy, the exchange stored in one
transaction, metrics and one structured log line for every outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from bot.call_records import call_records
from bot.chat_settings import ChatSettings, ChatSettingsBook, system_instruction
from bot.clock import Clock
from bot.commands import CommandContext, Commands
from bot.config import Settings
from bot.context import PastExchange, build_contents, speaker_prefixed
from bot.domain import (
    ANSWER_MESSAGE,
    Delta,
    FinalAnswer,
    FollowUp,
    Incoming,
    MessageKind,
    Notice,
    NoticeKind,
    Platform,
    ReplyEvent,
    Typing,
)
from bot.guards.access import AccessPolicy
from bot.guards.budgets import BudgetGuard, UsageReport, over_budget_text
from bot.guards.filter import TextFilter
from bot.guards.limits import RateLimiter
from bot.i18n import Language, format_wait, pick_language, text
from bot.llm.errors import GeminiError, ResponseBlockedError
from bot.llm.notices import failure_notice
from bot.llm.policy import AnswerPolicy, Attempt, QuotaExceededError
from bot.llm.types import GenerationParams, LlmRequest, Usage
from bot.memory import ConversationMemory, summary_instruction
from bot.observability.logs import get_logger
from bot.observability.metrics import REFUSAL_ACTION, REFUSALS, Metrics
from bot.sequencer import LocalSequencer, Sequencer
from bot.store import AuditRecord, CallRecord, Conversations, EventInbox, Records

log = get_logger(__name__)


@dataclass(slots=True)
class _Progress:
    """What happened while answering one message (for the inbox, metrics and the log line)."""

    outcome: str = "error"
    answered: bool = False
    completed: bool = False  # the answer ran to its end (not cancelled or closed half-way)
    undelivered: bool = False  # the adapter could not show the answer (see Engine.note_undelivered)
    shown: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChatMove:
    """What followed a chat to its new id: whether grants did, and how many conversations."""

    granted: bool
    conversations: int


class Engine:
    """Answers messages from every adapter the same way."""

    def __init__(
        self,
        *,
        settings: Settings,
        inbox: EventInbox,
        conversations: Conversations,
        records: Records,
        commands: Commands,
        policy: AnswerPolicy,
        clock: Clock,
        metrics: Metrics,
        access: AccessPolicy,
        limiter: RateLimiter | None = None,
        text_filter: TextFilter | None = None,
        sequencer: Sequencer | None = None,
        chat_settings: ChatSettingsBook | None = None,
        budgets: BudgetGuard | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._conversations = conversations
        self._records = records
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._access = access
        self._limiter = limiter
        self._filter = text_filter
        # Per-conversation order: in-process for SQLite, across replicas on PostgreSQL (bot.sequencer).
        self._locks: Sequencer = sequencer if sequencer is not None else LocalSequencer()
        self._commands = commands
        self._chat_settings = chat_settings
        self._budgets = budgets
        self._memory = memory
        self._answering: dict[tuple[str, str], _Progress] = {}  # (platform, event id) -> progress

    @property
    def locks_in_use(self) -> int:
        """How many conversations currently have a lock (bounded by in-flight work)."""
        return len(self._locks)

    async def accept(self, message: Incoming) -> bool:
        """Record ``message`` in the inbox the moment it arrives, before it waits for its turn.

        False for a duplicate (or a message not for the bot): do not answer it. After True, answer with
        ``handle(message, accepted=True)``. A message accepted this way and never answered (the process
        died) is followed up by :meth:`follow_ups` after a restart.
        """
        if not message.addressed_to_bot and message.command is None:
            return False
        if await self._claim(message):
            return True
        self._metrics.count_message(message.platform.value, "duplicate")
        log.info("message.duplicate", platform=message.platform.value, event_id=message.event_id)
        return False

    async def _claim(self, message: Incoming) -> bool:
        served = self._access.is_admin(message) or self._access.chat_allowed(message)
        return await self._inbox.claim_event(
            message.platform.value,
            message.event_id,
            message.user_id,
            self._clock.now(),
            touch_user=served,
            language=message.language,
            chat_key=message.chat_key,
            thread_key=message.thread_key,
            reply_to=message.reply_ids,
        )

    async def note_answer_message(self, message: Incoming, answer_id: str) -> None:
        """Remember the platform message that shows ``message``'s answer while it is being written.

        Should the process die before the answer is done, :meth:`follow_ups` hands it back as
        ``reply_ids["answer"]``, so the adapter can turn that half-written message (a Slack "…"
        placeholder, a group preview) into the follow-up notice instead of leaving it behind. A failure
        to record it is logged, never raised.
        """
        reply_to = {**message.reply_ids, ANSWER_MESSAGE: answer_id}
        try:
            await self._inbox.set_reply_to(message.platform.value, message.event_id, reply_to)
        except Exception:
            # Only the clean-up after a crash depends on it: the answer goes on.
            log.warning(
                "inbox.note_answer_failed",
                platform=message.platform.value,
                event_id=message.event_id,
                exc_info=True,
            )

    async def chat_settings(self, platform: Platform, chat_key: str, thread_key: str = "") -> ChatSettings:
        """The model, persona and switches that apply to this conversation (e.g. for a home page)."""
        if self._chat_settings is None:
            raise RuntimeError("this engine was built without chat settings")
        return await self._chat_settings.get(platform.value, chat_key, thread_key)

    async def usage(self, platform: Platform, user_id: str) -> UsageReport:
        """The user's Gemini use today and this month against their budgets (e.g. for a home page)."""
        if self._budgets is None:
            raise RuntimeError("this engine was built without budgets")
        return await self._budgets.report(platform.value, user_id)

    async def summaries_settled(self) -> None:
        """Wait until no conversation summary is being written (they run after answers)."""
        if self._memory is not None:
            await self._memory.settled()

    async def claim_thread(self, platform: Platform, chat_key: str, thread_key: str) -> None:
        """Record a thread the bot was addressed in as the bot's own, before any answer is stored in it,
        so :meth:`is_bot_thread` knows it after a restart or on another replica."""
        await self._conversations.open_conversation(platform.value, chat_key, thread_key, self._clock.now())

    async def is_bot_thread(self, platform: Platform, chat_key: str, thread_key: str) -> bool:
        """Whether the bot was addressed in this thread before (claimed, or answered in)."""
        return await self._conversations.conversation_exists(platform.value, chat_key, thread_key)

    async def chat_moved(self, platform: Platform, old_chat_key: str, new_chat_key: str) -> ChatMove:
        """A chat got a new id (a Telegram group became a supergroup): its grants and history follow it.

        The grants are kept in this process only, until it restarts (the config should name the new id).
        """
        granted = self._access.chat_migrated(platform, old_chat_key, new_chat_key)
        moved = await self._conversations.move_chat(platform.value, old_chat_key, new_chat_key)
        if self._chat_settings is not None:
            await self._chat_settings.move_chat(platform.value, old_chat_key, new_chat_key)
        return ChatMove(granted=granted, conversations=moved)

    async def follow_ups(self, platform: Platform, received_before: datetime) -> list[FollowUp]:
        """Take over the messages of ``platform`` that were accepted before ``received_before`` and never
        answered (a process died); each comes with the notice to send. Safe to run on several replicas:
        every message is taken by one of them only.
        """
        found: list[FollowUp] = []
        now = self._clock.now()
        for row in await self._inbox.unanswered_events(platform.value, received_before):
            if row.chat_key is None or not await self._inbox.take_unanswered(
                platform.value, row.event_id, now, received_before
            ):
                continue
            language = pick_language(row.language, self._settings.conversation.language)
            notice = Notice(NoticeKind.RESEND, text(language, "resend"))
            found.append(FollowUp(platform, row.chat_key, row.thread_key, row.user_id, row.reply_to, notice))
            self._metrics.count_message(platform.value, "resend_asked")
        if found:
            log.warning("inbox.unanswered_followed_up", platform=platform.value, messages=len(found))
        return found

    @contextlib.asynccontextmanager
    async def answering(
        self, message: Incoming, *, accepted: bool = False
    ) -> AsyncIterator[AsyncIterator[ReplyEvent]]:
        """:meth:`handle`'s stream for an adapter to show, closed when the block ends, however it ends.

        The conversation is released at once, not when the garbage collector finds the stream. An
        exception out of the block means the answer could not be shown: it counts as undelivered.
        """
        async with contextlib.aclosing(self.handle(message, accepted=accepted)) as events:
            try:
                yield events
            except Exception:
                self.note_undelivered(message)
                raise

    def note_undelivered(self, message: Incoming) -> None:
        """The adapter could not show ``message``'s answer: it is recorded and counted as undelivered."""
        progress = self._answering.get((message.platform.value, message.event_id))
        if progress is not None:
            progress.undelivered = True

    async def handle(self, message: Incoming, *, accepted: bool = False) -> AsyncGenerator[ReplyEvent, None]:
        """Answer ``message``: zero events for a duplicate or an unaddressed group message, else exactly one
        terminal ``FinalAnswer`` or ``Notice`` after any ``Typing``/``Delta`` events.

        Messages of one conversation are answered in the order their streams were first iterated.
        ``accepted`` says the adapter already recorded it with :meth:`accept`. The conversation is held
        until the stream ends or is closed: adapters use :meth:`answering`.
        """
        if not message.addressed_to_bot and message.command is None:
            return
        async with self._locks.hold(message.conversation_key):
            started = time.perf_counter()
            if not accepted and not await self._claim(message):
                self._metrics.count_message(message.platform.value, "duplicate")
                log.info("message.duplicate", platform=message.platform.value, event_id=message.event_id)
                return
            platform = message.platform.value
            if not await self._inbox.start_answer(platform, message.event_id, self._clock.now()):
                # Another replica's follow-up took it over while it waited: its sender was told to resend.
                self._metrics.count_message(platform, "taken_over")
                log.warning("message.taken_over", platform=platform, event_id=message.event_id)
                return
            progress = _Progress()
            key = (platform, message.event_id)
            self._answering[key] = progress
            self._metrics.inflight.inc()
            try:
                # Closed with this stream, so a Gemini call in progress ends now, not at garbage collection.
                async with contextlib.aclosing(self._respond(message, progress)) as events:
                    async for event in events:
                        if isinstance(event, FinalAnswer | Notice):
                            progress.answered = True
                        yield event
                progress.completed = True
            except Exception:
                log.exception("message.failed", platform=platform, event_id=message.event_id)
                progress.outcome = "error"
                progress.completed = True
                if not progress.answered:
                    progress.answered = True
                    yield Notice(NoticeKind.ERROR, text(self._language(message), "error"))
            finally:
                self._metrics.inflight.dec()
                self._answering.pop(key, None)
                await self._finish(message, progress, started)

    async def _finish(self, message: Incoming, progress: _Progress, started: float) -> None:
        if progress.undelivered:
            progress.outcome = "undelivered"
        if not progress.completed and not progress.answered and not progress.undelivered:
            # Cancelled or closed before any answer (shutdown, the adapter gave up): the row stays
            # unfinished, so a follow-up tells the sender to resend instead of leaving them in silence.
            progress.outcome = "interrupted"
        else:
            status = "undelivered" if progress.undelivered else "answered" if progress.answered else "failed"
            try:
                await asyncio.shield(
                    self._inbox.finish_event(
                        message.platform.value, message.event_id, status, self._clock.now()
                    )
                )
            except Exception:
                log.exception(
                    "inbox.finish_failed", platform=message.platform.value, event_id=message.event_id
                )
        outcome = self._metrics.count_message(message.platform.value, progress.outcome)
        if outcome in REFUSALS:
            # Refusals go to the audit table too, so /stats counts them the same on every replica.
            refusal = AuditRecord(
                at=self._clock.now(),
                platform=message.platform.value,
                actor_id=message.user_id,
                action=REFUSAL_ACTION,
                params={"detail": progress.outcome},
                outcome=outcome,
            )
            try:
                await asyncio.shield(self._records.record_audit([refusal]))
            except Exception:
                log.exception("audit.refusal_failed", platform=message.platform.value)
        log.info(
            "message.handled",
            platform=message.platform.value,
            event_id=message.event_id,
            outcome=progress.outcome,
            gemini_attempts=len(progress.attempts),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _language(self, message: Incoming) -> Language:
        return pick_language(message.language, self._settings.conversation.language)

    async def _respond(self, message: Incoming, progress: _Progress) -> AsyncGenerator[ReplyEvent, None]:
        lang = self._language(message)
        is_admin = self._access.is_admin(message)
        # Erasure is a right, not a service: /forget works in any private chat, allowed or not (the
        # sender may have talked to the bot in an allowed group).
        erasing = message.command == "forget" and message.is_private
        if not is_admin and not erasing and not self._access.chat_allowed(message):
            progress.outcome = "not_allowed"
            if message.is_private:
                yield Notice(NoticeKind.NOT_ALLOWED_CHAT, text(lang, "not_allowed_chat"))
            return
        now = self._clock.now()
        if message.command is not None:
            progress.outcome = "command"
            yield await self._commands.run(message, CommandContext(language=lang, is_admin=is_admin, now=now))
            return
        if message.kind is MessageKind.UNSUPPORTED:
            progress.outcome = "unsupported"
            yield Notice(NoticeKind.UNSUPPORTED, text(lang, "unsupported"))
            return
        user_text = message.text.strip()
        if not user_text and not message.attachments:
            progress.outcome = "empty"
            yield Notice(NoticeKind.EMPTY, text(lang, "empty"))
            return
        limit = self._settings.conversation.max_message_chars
        if len(user_text) > limit:
            progress.outcome = "too_long"
            yield Notice(NoticeKind.TOO_LONG, text(lang, "too_long", length=len(user_text), limit=limit))
            return
        if self._filter is not None:
            verdict = self._filter.check(user_text)
            if verdict.flagged:
                self._metrics.refusals.labels("filter").inc()
                if self._filter.action == "block":
                    progress.outcome = "filtered"
                    yield Notice(NoticeKind.FILTERED, text(lang, "filtered"))
                    return
                user_text = verdict.text
        full = self._policy.known_quota_refusal()
        if full is not None:
            # Refused before the rate limits spend anything: refused messages do not count (CONTRACT).
            yield self._failure_event(full, progress, lang)
            return
        if self._budgets is not None and not is_admin:
            spent = await self._budgets.check(message.platform.value, message.user_id)
            if spent is not None:
                progress.outcome = "over_budget"
                self._metrics.refusals.labels("budget").inc()
                yield Notice(NoticeKind.OVER_BUDGET, over_budget_text(spent, now, lang))
                return
        if self._limiter is not None and not is_admin:
            refusal = await self._limiter.acquire(message)
            if refusal is not None:
                progress.outcome = "rate_limited"
                self._metrics.refusals.labels(f"rate_limit_{refusal.scope}").inc()
                key = "rate_limited" if refusal.scope == "user" else "rate_limited_chat"
                yield Notice(
                    NoticeKind.RATE_LIMITED, text(lang, key, retry=format_wait(refusal.retry_after, lang))
                )
                return
        async for event in self._converse(message, user_text, lang, progress):
            yield event

    async def _converse(
        self, message: Incoming, user_text: str, lang: Language, progress: _Progress
    ) -> AsyncIterator[ReplyEvent]:
        settings = self._settings
        yield Typing()
        now = self._clock.now()
        conversation_id = await self._conversations.open_conversation(
            message.platform.value, message.chat_key, message.thread_key, now
        )
        history = await self._conversations.history(
            conversation_id, limit=settings.conversation.max_turns, since=now - settings.storage.retention
        )
        summary = await self._memory.summary(conversation_id) if self._memory is not None else None
        if summary is not None:  # what was folded into the summary is not sent twice
            history = [h for h in history if h.created_at > summary.last]
        sent_text = speaker_prefixed(user_text, message.user_name, is_private=message.is_private)
        if message.attachments:
            stored_text = " ".join([*(a.placeholder for a in message.attachments), sent_text]).strip()
        else:
            stored_text = sent_text
        gen = settings.gemini.generation
        chat = await self._settings_of(message)
        instruction = system_instruction(settings.gemini.system_instruction, chat)
        if summary is not None:
            instruction = "\n\n".join(p for p in (instruction, summary_instruction(summary.text)) if p)
        request = LlmRequest(
            contents=build_contents(
                [PastExchange(h.user_text, h.model_text) for h in history],
                sent_text,
                max_turns=settings.conversation.max_turns,
                max_chars=settings.conversation.max_context_chars,
                system_chars=len(instruction or ""),
                attachments=message.attachments,
            ),
            system_instruction=instruction or None,
            model=chat.model if chat.model != settings.gemini.model else None,
            search=chat.search,
            show_thoughts=chat.show_thoughts,
            generation=GenerationParams(
                temperature=chat.temperature if chat.temperature is not None else gen.temperature,
                top_p=gen.top_p,
                max_output_tokens=gen.max_output_tokens,
                thinking_budget=gen.thinking_budget,
            ),
        )
        screen = (
            self._filter.screen_stream() if self._filter is not None and self._filter.check_replies else None
        )
        parts: list[str] = []
        finish_reason = ""
        usage = Usage()
        try:
            async for chunk in self._policy.answer(request, progress.attempts.append):
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason:
                    finish_reason = chunk.finish_reason
                if not chunk.text:
                    continue
                parts.append(chunk.text)
                visible = screen.feed(chunk.text) if screen is not None else chunk.text
                if visible:
                    progress.shown.append(visible)
                    yield Delta(visible)
        except GeminiError as exc:
            await self._record_failure(message, conversation_id, request, progress, exc)
            yield self._failure_event(exc, progress, lang)
            return
        except (asyncio.CancelledError, GeneratorExit):
            # Cut off (shutdown, the adapter gave up): the attempts made were counted by the quota and
            # are recorded all the same.
            await asyncio.shield(self._record_failure(message, conversation_id, request, progress, None))
            raise
        reply = "".join(parts)
        if screen is not None:
            rest = screen.finish()
            if screen.flagged and self._filter is not None:
                verdict = self._filter.check(reply)
                if self._filter.action == "block":
                    progress.outcome = "reply_filtered"
                    self._metrics.refusals.labels("filter_reply").inc()
                    await self._record_failure(message, conversation_id, request, progress, None)
                    yield Notice(NoticeKind.FILTERED, text(lang, "reply_filtered"))
                    return
                reply = verdict.text
            elif rest:
                progress.shown.append(rest)
        await self._conversations.save_exchange(
            conversation_id=conversation_id,
            user_id=message.user_id,
            user_text=stored_text,
            model_text=reply,
            prompt_tokens=usage.prompt_tokens,
            output_tokens=usage.output_tokens + usage.thoughts_tokens,
            finish_reason=finish_reason,
            model=progress.attempts[-1].model if progress.attempts else self._policy.model,
            now=self._clock.now(),
            calls=self._call_records(message, conversation_id, progress),
            audit=self._audit_records(message, request, progress),
        )
        await self._count_usage(message, progress)
        if self._memory is not None:
            self._memory.after_answer(conversation_id, message.platform.value, len(instruction or ""))
        self._observe(progress)
        progress.outcome = "answered"
        notice = None
        if finish_reason == "MAX_TOKENS":
            notice = Notice(NoticeKind.TRUNCATED, text(lang, "truncated"))
        yield FinalAnswer(reply, notice)

    def _failure_event(self, exc: GeminiError, progress: _Progress, lang: Language) -> ReplyEvent:
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

    async def _record_failure(
        self,
        message: Incoming,
        conversation_id: int,
        request: LlmRequest,
        progress: _Progress,
        exc: GeminiError | None,
    ) -> None:
        if exc is not None:
            log.warning(
                "gemini.failed",
                platform=message.platform.value,
                event_id=message.event_id,
                kind=exc.kind,
                http_status=exc.http_status,
                gemini_status=exc.status,
                reason=exc.message[:300],
            )
        self._observe(progress)
        await self._count_usage(message, progress)
        try:
            await self._records.record_calls(
                self._call_records(message, conversation_id, progress),
                self._audit_records(message, request, progress),
            )
        except Exception:
            log.exception("llm_calls.record_failed", platform=message.platform.value)

    async def _settings_of(self, message: Incoming) -> ChatSettings:
        if self._chat_settings is None:
            return ChatSettings(self._settings.gemini.model, "", None, None, None, None, None)
        return await self._chat_settings.get(message.platform.value, message.chat_key, message.thread_key)

    async def _count_usage(self, message: Incoming, progress: _Progress) -> None:
        if self._budgets is None or not progress.attempts:
            return
        usages = [a.usage for a in progress.attempts]
        try:
            await self._budgets.count(message.platform.value, message.user_id, message.user_name, usages)
        except Exception:
            log.exception("usage.count_failed", platform=message.platform.value)

    def _observe(self, progress: _Progress) -> None:
        for attempt in progress.attempts:
            endpoint = _endpoint_label(attempt.endpoint)
            self._metrics.gemini_requests.labels(
                attempt.model, endpoint, attempt.outcome, str(attempt.http_status or 0)
            ).inc()
            self._metrics.gemini_latency.labels(attempt.model).observe(attempt.latency_s)
            self._metrics.tokens.labels("in").inc(attempt.usage.prompt_tokens)
            self._metrics.tokens.labels("out").inc(
                attempt.usage.output_tokens + attempt.usage.thoughts_tokens
            )

    def _call_records(self, message: Incoming, conversation_id: int, progress: _Progress) -> list[CallRecord]:
        return call_records(
            progress.attempts,
            at=self._clock.now(),
            platform=message.platform.value,
            conversation_id=conversation_id,
        )

    def _audit_records(
        self, message: Incoming, request: LlmRequest, progress: _Progress
    ) -> list[AuditRecord]:
        gen = request.generation
        # Texts are recorded by their length only: a hash of a short text could be reversed.
        params: dict[str, object] = {
            "system_instruction_chars": len(request.system_instruction or ""),
            "contents": len(request.contents),
            "text_chars": sum(len(c.text) for c in request.contents),
            "attachments": sum(len(c.attachments) for c in request.contents),
            "temperature": gen.temperature,
            "top_p": gen.top_p,
            "max_output_tokens": gen.max_output_tokens,
            "thinking_budget": gen.thinking_budget,
            "stream": self._settings.gemini.stream,
        }
        now = self._clock.now()
        return [
            AuditRecord(
                at=now,
                platform=message.platform.value,
                actor_id=message.user_id,
                action="gemini.generate",
                params={**params, "attempt": a.attempt, "endpoint": _endpoint_label(a.endpoint)},
                model=a.model,
                outcome=a.outcome,
            )
            for a in progress.attempts
        ]


def _endpoint_label(base_url: str) -> str:
    return base_url.split("://", 1)[-1].split("/", 1)[0]

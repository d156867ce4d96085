"""The conversation pipeline: one incoming message in, one answer out as a stream of reply events.

Steps: per-chat order, inbox dedup, access, commands, input checks and the word filter, the quota, rate
limits (bot.guards.steps), context from the store, the Gemini answer under the policy, the exchange stored
in one transaction, then the outcome's accounting (bot.outcomes): metrics and one structured log line for
every outcome.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.answerer import Answerer
from bot.chat_settings import ChatSettings, ChatSettingsBook
from bot.clock import Clock
from bot.commands import CommandContext, Commands
from bot.config import Settings
from bot.domain import (
    ANSWER_MESSAGE,
    FinalAnswer,
    FollowUp,
    Incoming,
    Notice,
    NoticeKind,
    Platform,
    ReplyEvent,
    VoteValue,
)
from bot.guards.access import AccessPolicy
from bot.guards.blocklist import BlockList
from bot.guards.budgets import BudgetGuard, UsageReport, over_budget_text
from bot.guards.filter import TextFilter
from bot.guards.limits import RateLimiter
from bot.guards.media import checked_media
from bot.guards.steps import (
    Rejection,
    access_rejection,
    blocked_rejection,
    checked_context,
    checked_text,
    rate_rejection,
)
from bot.i18n import Language, pick_language, text
from bot.llm.policy import AnswerPolicy
from bot.media.keeper import MediaKeeper
from bot.memory import ConversationMemory
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.outcomes import OutcomeAccounting, Progress
from bot.sequencer import LocalSequencer, Sequencer, Wakeups
from bot.store import AnswerStart, Conversations, EventInbox, Records
from bot.votes import Votes

log = get_logger(__name__)

# A message waiting for an earlier one of its conversation on another replica looks again after these
# delays (seconds, doubling); one finishing in this process wakes it at once.
_FIRST_RECHECK = 0.02
_MAX_RECHECK = 0.5


def longest_answer(settings: Settings) -> timedelta:
    """Longer than any answer can take (Gemini's retry deadline, the shutdown grace and a margin): a
    message unfinished for longer was left by a dead process."""
    return settings.gemini.retry.deadline + settings.server.shutdown_grace + timedelta(minutes=2)


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
        blocklist: BlockList | None = None,
        chat_settings: ChatSettingsBook | None = None,
        budgets: BudgetGuard | None = None,
        memory: ConversationMemory | None = None,
        votes: Votes | None = None,
        media: MediaKeeper | None = None,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._conversations = conversations
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._access = access
        self._limiter = limiter
        self._filter = text_filter
        self._blocklist = blocklist
        self._chat_settings = chat_settings
        self._budgets = budgets
        # Per-conversation order: in-process for SQLite, across replicas on PostgreSQL (bot.sequencer).
        self._locks: Sequencer = sequencer if sequencer is not None else LocalSequencer()
        self._finished = Wakeups()
        self._longest_answer = longest_answer(settings)
        self._commands = commands
        self._outcomes = OutcomeAccounting(
            inbox=inbox, records=records, metrics=metrics, clock=clock, stream=settings.gemini.stream
        )
        self._answerer = Answerer(
            settings=settings,
            conversations=conversations,
            policy=policy,
            clock=clock,
            metrics=metrics,
            outcomes=self._outcomes,
            text_filter=text_filter,
            chat_settings=chat_settings,
            budgets=budgets,
            memory=memory,
            media=media,
        )
        self._memory = memory
        self._votes = votes
        self._media = media
        self._answering: dict[tuple[str, str], Progress] = {}  # (platform, event id) -> progress

    @property
    def sequencer(self) -> Sequencer:
        """What keeps each conversation's messages in order (in-process, or across replicas)."""
        return self._locks

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
            # Without history (inline) there is no chat to follow up in after a crash.
            chat_key=message.chat_key if message.keep_history else None,
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

    async def answer_shown(self, message: Incoming, message_ids: Sequence[str]) -> None:
        """``message``'s final answer is shown in these platform messages of its chat: votes on them count
        for it (:meth:`record_vote`). A failure to record them is logged, never raised."""
        if self._votes is not None:
            await self._votes.answer_shown(message, message_ids)

    async def record_vote(
        self, platform: Platform, chat_key: str, message_id: str, user_id: str, value: VoteValue | None
    ) -> bool:
        """A user's vote on the answer in ``message_id`` (None: withdrawn); False when that message shows
        no answer the bot knows, or votes are not kept."""
        if self._votes is None:
            return False
        return await self._votes.record(platform, chat_key, message_id, user_id, value)

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

    async def searches_web(self, platform: Platform, chat_key: str, thread_key: str = "") -> bool:
        """Whether Gemini searches the web for this conversation (its /settings switch over the config)."""
        search = None
        if self._chat_settings is not None:
            search = (await self._chat_settings.get(platform.value, chat_key, thread_key)).search
        return self._settings.gemini.tools.google_search if search is None else search

    @property
    def context_chars(self) -> int:
        """How many characters a request's context may hold (``conversation.max_context_chars``): text an
        adapter reads for one message (``Incoming.context_text``) should fit in it."""
        return self._settings.conversation.max_context_chars

    @property
    def retention(self) -> timedelta:
        """How long conversation text is kept (e.g. for a home page's privacy facts)."""
        return self._settings.storage.retention

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

        Messages of one conversation are answered in the order their streams were first iterated;
        ``accepted`` ones (the adapter recorded them with :meth:`accept`) also only after every earlier
        inbox row of their conversation, on any replica. The conversation is held until the stream ends or
        is closed: adapters use :meth:`answering`.
        """
        if not message.addressed_to_bot and message.command is None:
            return
        async with self._turn(message, accepted) as start:
            started = time.perf_counter()
            if start is None:
                self._metrics.count_message(message.platform.value, "duplicate")
                log.info("message.duplicate", platform=message.platform.value, event_id=message.event_id)
                return
            platform = message.platform.value
            if start is AnswerStart.TAKEN:
                # Another replica's follow-up took it over while it waited: its sender was told to resend.
                self._metrics.count_message(platform, "taken_over")
                log.warning("message.taken_over", platform=platform, event_id=message.event_id)
                return
            progress = Progress()
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
                await self._outcomes.finish(message, progress, started)
                self._finished.notify(message.conversation_key)

    @contextlib.asynccontextmanager
    async def _turn(self, message: Incoming, accepted: bool) -> AsyncIterator[AnswerStart | None]:
        """Hold the message's conversation from its turn on: STARTED (its row is being answered), TAKEN
        (a follow-up took it over) or None (a duplicate, when ``accepted`` is False and it is claimed here).

        An accepted message whose conversation has an unfinished earlier inbox row (arrival order, on any
        replica) lets go of the conversation and waits for it, so the earlier one can be answered.
        """
        key = message.conversation_key
        platform = message.platform.value
        recheck = _FIRST_RECHECK
        while True:
            async with self._locks.hold(key):
                now = self._clock.now()
                if not accepted:
                    # Claimed under the lock: nothing of its conversation in the inbox is waiting before it.
                    if not await self._claim(message):
                        yield None
                    elif await self._inbox.start_answer(platform, message.event_id, now):
                        yield AnswerStart.STARTED
                    else:
                        yield AnswerStart.TAKEN
                    return
                start = await self._inbox.start_answer_in_order(
                    platform, message.event_id, now, now - self._longest_answer
                )
                if start is not AnswerStart.WAITING:
                    yield start
                    return
            await self._finished.wait(key, recheck)
            recheck = min(recheck * 2, _MAX_RECHECK)

    async def _over_budget(self, message: Incoming, lang: Language) -> Rejection | None:
        """A sender whose token budget is used up: told when it frees (Gemini is not called)."""
        assert self._budgets is not None
        spent = await self._budgets.check(message.platform.value, message.user_id)
        if spent is None:
            return None
        self._metrics.refusals.labels("budget").inc()
        notice = Notice(NoticeKind.OVER_BUDGET, over_budget_text(spent, self._clock.now(), lang))
        return Rejection("over_budget", notice)

    def _language(self, message: Incoming) -> Language:
        return pick_language(message.language, self._settings.conversation.language)

    async def admits(self, message: Incoming) -> bool:
        """Whether ``message`` passes the blocklist and the chat allow-list. Adapters download a message's
        files only then: a refused message is answered (or ignored) without them."""
        lang = self._language(message)
        return await self._admission(message, lang, is_admin=self._access.is_admin(message)) is None

    async def _admission(self, message: Incoming, lang: Language, *, is_admin: bool) -> Rejection | None:
        """The refusal of a blocked sender or a chat not served, else None."""
        return await blocked_rejection(message, self._blocklist, lang) or access_rejection(
            message, self._access, is_admin=is_admin, lang=lang
        )

    async def _respond(self, message: Incoming, progress: Progress) -> AsyncGenerator[ReplyEvent, None]:
        lang = self._language(message)
        is_admin = self._access.is_admin(message)
        rejection = await self._admission(message, lang, is_admin=is_admin)
        if rejection is None and message.command is not None:
            progress.outcome = "command"
            context = CommandContext(language=lang, is_admin=is_admin, now=self._clock.now())
            yield await self._commands.run(message, context)
            if self._media is not None and message.command in ("forget", "reset"):
                self._media.erased()  # their files' Files API copies are deleted now, not at the next sweep
            return
        checked = rejection or checked_text(
            message,
            lang,
            max_chars=self._settings.conversation.max_message_chars,
            text_filter=self._filter,
            metrics=self._metrics,
        )
        attachments = checked_media(message, self._settings.media, lang) if isinstance(checked, str) else ()
        if isinstance(attachments, Rejection):
            checked, attachments = attachments, ()
        if isinstance(checked, str):
            read = checked_context(message, lang, text_filter=self._filter, metrics=self._metrics)
            if isinstance(read, Rejection):
                checked = read
            elif read != message.context_text:
                message = replace(message, context_text=read)
        if isinstance(checked, str):
            full = self._policy.known_quota_refusal()
            if full is not None:
                # Refused before the rate limits spend anything: refused messages do not count against them.
                yield self._answerer.failure_event(full, progress, lang)
                return
            if self._budgets is not None and not is_admin:
                checked = await self._over_budget(message, lang) or checked
            if self._limiter is not None and not is_admin and isinstance(checked, str):
                checked = await rate_rejection(message, self._limiter, self._metrics, lang) or checked
        if isinstance(checked, Rejection):
            progress.outcome = checked.outcome
            if checked.notice is not None:
                yield checked.notice
            return
        async for event in self._answerer.answer(message, checked, lang, progress, attachments):
            yield event

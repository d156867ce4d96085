"""Summarised memory (``conversation.summarize``): exchanges leaving the window are folded into a running
summary by a separate Gemini call, scheduled after an answer is stored, never on the answer's path.

The summary goes into the system instruction ("Earlier in this conversation: ..."). The calls go through
the answer policy (so the quota counts them) and are recorded in ``llm_calls`` and the audit log as
``gemini.summarize``; they count against nobody's budget. /reset, /forget and retention clear summaries
in the store; a fold that started before them is not written (see ``Summaries.save_summary``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from bot.call_records import call_records
from bot.clock import Clock
from bot.config import Settings
from bot.context import PastExchange, window_size
from bot.llm.errors import GeminiError
from bot.llm.policy import AnswerPolicy, Attempt, AttemptListener
from bot.llm.types import ChatMessage, GenerationParams, LlmRequest
from bot.observability.logs import get_logger
from bot.store import AuditRecord, Exchange, Records, StoredSummary, Summaries

log = get_logger(__name__)

SUMMARY_ACTION = "gemini.summarize"
_FOLD_AT_MOST = 50  # exchanges read per fold beyond the window
_INSTRUCTION = (
    "You keep the memory of a chat between a user and an assistant. Merge the earlier summary and the "
    "exchanges below into one updated summary of at most {chars} characters: the facts, names, "
    "decisions, preferences and open questions worth remembering, in the conversation's language. "
    "Write only the summary."
)


def summary_instruction(summary: str) -> str:
    """The part of the system instruction that carries the summary."""
    return f"Earlier in this conversation: {summary}"


def _fold_prompt(previous: StoredSummary | None, folded: list[Exchange]) -> str:
    lines = [f"Earlier summary: {previous.text if previous else '(none)'}", "", "Exchanges to add:"]
    for exchange in folded:
        lines += [f"User: {exchange.user_text}", f"Assistant: {exchange.model_text}"]
    return "\n".join(lines)


class ConversationMemory:
    """Reads the summaries for requests and folds leaving exchanges in the background."""

    def __init__(
        self,
        *,
        settings: Settings,
        summaries: Summaries,
        records: Records,
        policy: AnswerPolicy,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._summaries = summaries
        self._records = records
        self._policy = policy
        self._clock = clock
        self._folding: dict[int, asyncio.Task[None]] = {}

    async def summary(self, conversation_id: int) -> StoredSummary | None:
        """This conversation's summary, if it has one (one primary-key lookup)."""
        return await self._summaries.summary(conversation_id)

    def after_answer(self, conversation_id: int, platform: str, system_chars: int) -> None:
        """Fold what has left the window, in the background (one fold per conversation at a time; the
        next answer folds what a running one did not take)."""
        if conversation_id in self._folding:
            return
        task = asyncio.create_task(self._fold(conversation_id, platform, system_chars))
        self._folding[conversation_id] = task
        task.add_done_callback(lambda _: self._folding.pop(conversation_id, None))

    async def settled(self) -> None:
        """Wait until no fold is running (tests; shutdown)."""
        while self._folding:
            await asyncio.gather(*self._folding.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the folds in progress (a cancelled fold is simply done by a later answer)."""
        for task in list(self._folding.values()):
            task.cancel()
        await self.settled()

    async def _fold(self, conversation_id: int, platform: str, system_chars: int) -> None:
        try:
            await self._fold_leaving(conversation_id, platform, system_chars)
        except GeminiError as exc:
            log.warning("memory.summary_failed", kind=exc.kind, conversation_id=conversation_id)
        except Exception:
            log.exception("memory.fold_failed", conversation_id=conversation_id)

    async def _fold_leaving(self, conversation_id: int, platform: str, system_chars: int) -> None:
        conversation = self._settings.conversation
        previous = await self._summaries.summary(conversation_id)
        since = self._clock.now() - self._settings.storage.retention
        after = max(previous.last, since) if previous is not None else since
        recent = await self._summaries.exchanges_after(
            conversation_id, after, conversation.max_turns + _FOLD_AT_MOST
        )
        budget = conversation.max_context_chars - system_chars - conversation.summary_chars
        kept = window_size(
            [PastExchange(e.user_text, e.model_text) for e in recent],
            max_turns=conversation.max_turns,
            budget=budget,
        )
        folded = recent[: len(recent) - kept]
        if not folded:
            return
        attempts: list[Attempt] = []
        try:
            text = await self._summarise(previous, folded, attempts.append)
        finally:
            await self._record(conversation_id, platform, attempts, self._clock.now())
        if text and not await self._summaries.save_summary(conversation_id, text, previous, folded):
            log.info("memory.fold_superseded", conversation_id=conversation_id)

    async def _summarise(
        self, previous: StoredSummary | None, folded: list[Exchange], on_attempt: AttemptListener
    ) -> str:
        chars = self._settings.conversation.summary_chars
        request = LlmRequest(
            contents=(ChatMessage(role="user", text=_fold_prompt(previous, folded)),),
            system_instruction=_INSTRUCTION.format(chars=chars),
            generation=GenerationParams(temperature=0.2, max_output_tokens=max(256, chars)),
            model=self._settings.conversation.summary_model,
        )
        parts = [chunk.text async for chunk in self._policy.answer(request, on_attempt)]
        return "".join(parts).strip()[:chars]

    async def _record(
        self, conversation_id: int, platform: str, attempts: list[Attempt], now: datetime
    ) -> None:
        if not attempts:
            return
        audit = [
            AuditRecord(
                at=now,
                platform=platform,
                actor_id="gembot",
                action=SUMMARY_ACTION,
                params={"attempt": a.attempt, "conversation_id": conversation_id},
                model=a.model,
                outcome=a.outcome,
            )
            for a in attempts
        ]
        calls = call_records(attempts, at=now, platform=platform, conversation_id=conversation_id)
        try:
            await self._records.record_calls(calls, audit)
        except Exception:
            log.exception("memory.record_failed", conversation_id=conversation_id)

"""Outcome accounting for one answered message: the inbox status, metrics, call and audit records, and
the one structured log line every message gets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.call_records import call_records
from bot.clock import Clock
from bot.domain import Incoming
from bot.llm.errors import GeminiError
from bot.llm.policy import Attempt
from bot.llm.types import LlmRequest
from bot.media.kinds import media_kind
from bot.observability.logs import get_logger
from bot.observability.metrics import REFUSAL_ACTION, REFUSALS, SUPERSEDED, TOOL_CALL_ACTION, Metrics
from bot.store import AuditRecord, CallRecord, EventInbox, Records

log = get_logger(__name__)


@dataclass(slots=True)
class Progress:
    """What happened while answering one message (for the inbox, metrics and the log line)."""

    outcome: str = "error"
    answered: bool = False
    completed: bool = False  # the answer ran to its end (not cancelled or closed half-way)
    undelivered: bool = False  # the adapter could not show the answer (see Engine.note_undelivered)
    shown: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)


class OutcomeAccounting:
    """Records how each message ended: in the inbox, the metrics, the call and audit tables and the log."""

    def __init__(
        self, *, inbox: EventInbox, records: Records, metrics: Metrics, clock: Clock, stream: bool
    ) -> None:
        self._inbox = inbox
        self._records = records
        self._metrics = metrics
        self._clock = clock
        self._stream = stream

    async def finish(self, message: Incoming, progress: Progress, started: float) -> None:
        """Close ``message``'s inbox row, count its outcome (auditing refusals) and log it once."""
        if progress.undelivered:
            progress.outcome = "undelivered"
        interrupted = not progress.completed and not progress.answered and not progress.undelivered
        if interrupted and message.keep_history:
            # Cancelled or closed before any answer (shutdown, the adapter gave up): the row stays
            # unfinished, so a follow-up tells the sender to resend instead of leaving them in silence.
            progress.outcome = "interrupted"
        else:
            if interrupted:
                # An inline query the user typed on from: nothing to follow up, nowhere to say it.
                progress.outcome = SUPERSEDED
            status = "undelivered" if progress.undelivered else "answered" if progress.answered else "failed"
            status = SUPERSEDED if interrupted else status
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

    async def record_failure(
        self,
        message: Incoming,
        conversation_id: int | None,
        request: LlmRequest,
        progress: Progress,
        exc: GeminiError | None,
    ) -> None:
        """Record the Gemini calls of an answer that was not stored (failed, cut off or filtered)."""
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
        self.observe(progress)
        try:
            await self._records.record_calls(
                self.call_records(message, conversation_id, progress),
                self.audit_records(message, request, progress),
            )
        except Exception:
            log.exception("llm_calls.record_failed", platform=message.platform.value)

    async def record(self, calls: list[CallRecord], audit: list[AuditRecord]) -> None:
        """Record an answer's calls and audit rows where no exchange is stored with them (inline)."""
        await self._records.record_calls(calls, audit)

    def observe(self, progress: Progress) -> None:
        """Count every Gemini attempt of ``progress`` in the metrics."""
        for attempt in progress.attempts:
            endpoint = endpoint_label(attempt.endpoint)
            self._metrics.gemini_requests.labels(
                attempt.model, endpoint, attempt.outcome, str(attempt.http_status or 0)
            ).inc()
            self._metrics.gemini_latency.labels(attempt.model).observe(attempt.latency_s)
            self._metrics.tokens.labels("in").inc(attempt.usage.prompt_tokens)
            self._metrics.tokens.labels("out").inc(
                attempt.usage.output_tokens + attempt.usage.thoughts_tokens
            )

    def call_records(
        self, message: Incoming, conversation_id: int | None, progress: Progress
    ) -> list[CallRecord]:
        """One call record per Gemini attempt."""
        return call_records(
            progress.attempts,
            at=self._clock.now(),
            platform=message.platform.value,
            conversation_id=conversation_id,
        )

    def audit_records(
        self,
        message: Incoming,
        request: LlmRequest,
        progress: Progress,
        tool_calls: Mapping[str, int] | None = None,
    ) -> list[AuditRecord]:
        """One audit record per Gemini attempt, the request described by sizes only, and one per search,
        link read or code run (never the query or the link)."""
        gen = request.generation
        # Texts are recorded by their length only: a hash of a short text could be reversed.
        params: dict[str, object] = {
            "system_instruction_chars": len(request.system_instruction or ""),
            "contents": len(request.contents),
            "text_chars": sum(len(c.text) for c in request.contents),
            "attachments": sum(len(c.attachments) for c in request.contents),
            # The message's own files by kind, type and size: never their bytes or names.
            "media": [
                {"kind": media_kind(m.mime_type), "mime_type": m.mime_type, "size": m.size}
                for m in (request.contents[-1].attachments if request.contents else ())
            ],
            "temperature": gen.temperature,
            "top_p": gen.top_p,
            "max_output_tokens": gen.max_output_tokens,
            "thinking_budget": gen.thinking_budget,
            "thinking_level": gen.thinking_level,
            "tools": sorted(request.tools),
            "stream": self._stream,
        }
        now = self._clock.now()
        tool_records = [
            AuditRecord(now, message.platform.value, message.user_id, TOOL_CALL_ACTION, {}, outcome=tool)
            for tool, count in (tool_calls or {}).items()
            for _ in range(count)
        ]
        return tool_records + [
            AuditRecord(
                at=now,
                platform=message.platform.value,
                actor_id=message.user_id,
                action="gemini.generate",
                params={
                    **params,
                    "attempt": a.attempt,
                    "endpoint": endpoint_label(a.endpoint),
                    "tool_calls": dict(tool_calls or {}) if a is progress.attempts[-1] else {},
                },
                model=a.model,
                outcome=a.outcome,
            )
            for a in progress.attempts
        ]


def endpoint_label(base_url: str) -> str:
    """The host (and port) of a Gemini endpoint, for metric labels."""
    return base_url.split("://", 1)[-1].split("/", 1)[0]

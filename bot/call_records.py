"""What is recorded of each Gemini attempt (``llm_calls``): the same for answers and summaries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.llm.policy import Attempt
from bot.store import CallRecord


def call_records(
    attempts: Sequence[Attempt], *, at: datetime, platform: str, conversation_id: int | None
) -> list[CallRecord]:
    """One record per attempt (thinking tokens count as output, as Google bills them)."""
    return [
        CallRecord(
            at=at,
            platform=platform,
            model=a.model,
            endpoint=a.endpoint,
            attempt=a.attempt,
            outcome=a.outcome,
            http_status=a.http_status,
            gemini_status=a.gemini_status,
            latency_ms=a.latency_s * 1000,
            prompt_tokens=a.usage.prompt_tokens,
            output_tokens=a.usage.output_tokens + a.usage.thoughts_tokens,
            conversation_id=conversation_id,
        )
        for a in attempts
    ]

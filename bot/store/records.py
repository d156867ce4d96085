"""The Gemini calls and the audit records: no text, one row per HTTP attempt or audited action."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.engine import Connection

from bot.observability.logs import REDACTOR
from bot.store.database import Queries
from bot.store.tables import audit as _audit
from bot.store.tables import llm_calls as _llm_calls

__all__ = ["AuditRecord", "CallRecord", "Records", "insert_calls_and_audit"]

_INSERT_CALLS: Final = _llm_calls.insert()
_INSERT_AUDIT: Final = _audit.insert()


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt against Gemini."""

    at: datetime
    platform: str
    model: str
    endpoint: str
    attempt: int
    outcome: str
    http_status: int | None
    gemini_status: str | None
    latency_ms: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    conversation_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action; ``params`` must already be redacted."""

    at: datetime
    platform: str
    actor_id: str
    action: str
    params: Mapping[str, object]
    model: str | None = None
    outcome: str | None = None


class Records(Queries):
    """Writes the ``llm_calls`` and ``audit`` rows that belong to no stored exchange."""

    async def record_calls(self, calls: Sequence[CallRecord], audit: Sequence[AuditRecord] = ()) -> None:
        """Store Gemini calls (and audit records) of an answer that produced no exchange."""
        if not calls and not audit:
            return
        await self.run_write(lambda conn: insert_calls_and_audit(conn, calls, audit))

    async def record_audit(self, audit: Sequence[AuditRecord]) -> None:
        """Store audit records."""
        if not audit:
            return
        await self.run_write(lambda conn: insert_calls_and_audit(conn, (), audit))


def insert_calls_and_audit(
    conn: Connection, calls: Sequence[CallRecord], audit: Sequence[AuditRecord]
) -> None:
    """Insert ``calls`` and ``audit`` (whose parameters are redacted here) on ``conn``."""
    if calls:
        conn.execute(
            _INSERT_CALLS,
            [
                {
                    "at": call.at,
                    "platform": call.platform,
                    "conversation_id": call.conversation_id,
                    "model": call.model,
                    "endpoint": call.endpoint,
                    "attempt": call.attempt,
                    "outcome": call.outcome,
                    "http_status": call.http_status,
                    "gemini_status": call.gemini_status,
                    "latency_ms": call.latency_ms,
                    "prompt_tokens": call.prompt_tokens,
                    "output_tokens": call.output_tokens,
                }
                for call in calls
            ],
        )
    if audit:
        conn.execute(
            _INSERT_AUDIT,
            [
                {
                    "at": record.at,
                    "platform": record.platform,
                    "actor_id": record.actor_id,
                    "action": record.action,
                    "model": record.model,
                    # The one choke point for audit parameters: secrets, e-mails and phones masked.
                    "params": json.dumps(
                        REDACTOR.redact_value(dict(record.params)),
                        ensure_ascii=False,
                        sort_keys=True,
                        default=str,
                    ),
                    "outcome": record.outcome,
                }
                for record in audit
            ],
        )

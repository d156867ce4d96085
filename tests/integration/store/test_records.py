"""Gemini calls and audit records stored without an exchange, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from bot.store import AuditRecord, Store
from bot.store.models import AuditRow, LlmCall
from tests.integration.store.helpers import T0, call, count


async def test_record_calls_and_audit(store: Store) -> None:
    await store.records.record_calls(
        [call(T0, outcome="rate_limited", http_status=429, gemini_status="RESOURCE_EXHAUSTED")]
    )
    await store.records.record_calls([], [AuditRecord(T0, "slack", "U1", "reset", {})])
    await store.records.record_audit([AuditRecord(T0, "slack", "U1", "forget", {}, outcome="ok")])
    await store.records.record_audit([])
    assert (await count(store, LlmCall), await count(store, AuditRow)) == (1, 2)
    (got,) = await store.statistics.calls_since(T0)
    assert (got.outcome, got.gemini_status, got.latency_ms) == ("rate_limited", "RESOURCE_EXHAUSTED", 123.5)

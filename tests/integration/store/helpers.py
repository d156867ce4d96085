"""Rows for the store tests: a Gemini call record, a saved exchange, a table's row count."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from bot.store import CallRecord, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def call(at: datetime, **overrides: object) -> CallRecord:
    values: dict[str, object] = {
        "at": at,
        "platform": "telegram",
        "model": "gemini-2.5-flash",
        "endpoint": "https://generativelanguage.googleapis.com",
        "attempt": 1,
        "outcome": "ok",
        "http_status": 200,
        "gemini_status": None,
        "latency_ms": 123.5,
        "prompt_tokens": 10,
        "output_tokens": 20,
    }
    values.update(overrides)
    return CallRecord(**values)  # type: ignore[arg-type]


async def save(store: Store, conversation_id: int, n: int, at: datetime, user_id: str = "u1") -> None:
    await store.conversations.save_exchange(
        conversation_id=conversation_id,
        user_id=user_id,
        user_text=f"question {n}",
        model_text=f"answer {n}",
        prompt_tokens=1,
        output_tokens=2,
        finish_reason="STOP",
        model="gemini-2.5-flash",
        now=at,
    )


async def count(store: Store, model: type[object]) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())

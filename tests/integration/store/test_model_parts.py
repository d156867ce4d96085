"""Model parts kept for later turns: stored with their exchange, read back with it, erased with it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.store import Store
from bot.store.models import Turn
from tests.integration.store.helpers import T0

PARTS = [
    {"text": "Let me compute it.", "thoughtSignature": "c2lnbmF0dXJl"},
    {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1\n"}},
]


async def _saved(store: Store, user_id: str, parts: list[dict[str, object]] | None) -> int:
    cid = await store.conversations.open_conversation("telegram", f"chat-{user_id}", "", T0)
    await store.conversations.save_exchange(
        conversation_id=cid,
        user_id=user_id,
        user_text="compute",
        model_text="Let me compute it. 1",
        model_parts=parts,
        prompt_tokens=1,
        output_tokens=2,
        finish_reason="STOP",
        model="gemini-3-flash-preview",
        now=T0,
    )
    return cid


async def test_parts_round_trip_and_plain_answers_store_none(store: Store) -> None:
    cid = await _saved(store, "u1", PARTS)
    [exchange] = await store.conversations.history(cid, limit=5, since=T0 - timedelta(days=1))
    assert list(exchange.model_parts) == PARTS
    plain = await _saved(store, "u2", None)
    [exchange] = await store.conversations.history(plain, limit=5, since=T0 - timedelta(days=1))
    assert exchange.model_parts == ()


async def test_forget_erases_the_parts_with_the_exchange(store: Store) -> None:
    await _saved(store, "u3", PARTS)
    assert await store.users.forget_user("telegram", "u3", T0) == 1
    async with store.engine.connect() as conn:
        stored = (await conn.execute(select(Turn.model_parts))).scalars().all()
    assert all("c2lnbmF0dXJl" not in (value or "") for value in stored)

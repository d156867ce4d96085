"""The store alone: N tasks each answering messages in a loop, with a message's database work.

Per message: claim the inbox event (with the user touch), find the conversation, read the history, save
the exchange, finish the event: the statements the engine runs, without Gemini or a platform.

    .venv/bin/python benchmarks/store_bench.py [--tasks 100] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.store import Store, upgrade_to_head


async def _user(store: Store, user: int, stop: float, ids: itertools.count[int], done: list[int]) -> None:
    inbox, conversations = store.inbox, store.conversations  # as the engine holds them
    while time.perf_counter() < stop:
        now = datetime.now(UTC)
        event = f"e{next(ids)}"
        await inbox.claim_event(
            "telegram",
            event,
            f"u{user}",
            now,
            touch_user=True,
            chat_key=str(user),
            reply_to={"message_id": "1"},
        )
        conversation = await conversations.open_conversation("telegram", str(user), "", now)
        await conversations.history(conversation, limit=10, since=now - timedelta(hours=24))
        await conversations.save_exchange(
            conversation_id=conversation,
            user_id=f"u{user}",
            user_text="hello",
            model_text="echo: hello",
            prompt_tokens=1,
            output_tokens=1,
            finish_reason="STOP",
            model="gemini-2.5-flash",
            now=now,
        )
        await inbox.finish_event("telegram", event, "answered", now)
        done.append(1)


async def main(tasks: int, seconds: float) -> None:
    """Print messages per second of database work on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite+aiosqlite:///{Path(work) / 'bench.db'}"
        await upgrade_to_head(url)
        store = await Store.open(url)
        done: list[int] = []
        started = time.perf_counter()
        ids = itertools.count()
        await asyncio.gather(*(_user(store, u, started + seconds, ids, done) for u in range(tasks)))
        elapsed = time.perf_counter() - started
        await store.close()
    print(f"store: {len(done) / elapsed:,.0f} messages/s ({tasks} tasks, {elapsed:.1f} s, SQLite)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.seconds))

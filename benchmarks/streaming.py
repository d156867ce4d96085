"""Streaming: time from the first SSE chunk leaving the Gemini emulator to the first visible text in Telegram.

Private chats, one message at a time (so the first chunk and the first visible text are unambiguous).
The reply streams in ``CHUNKS`` pieces ``CHUNK_DELAY`` s apart, so it takes longer than any preview
interval: the first visible text is a sendMessageDraft (or, if none comes, the final sendMessage).
Both emulators run in this process and share the monotonic clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchTelegram, Users, start_gembot, stop, summary_ms, wait_until
from tests.fakes import gemini as gemini_module
from tests.fakes.gemini import GeminiEmulator, Reply

CHUNKS = [f"Part {i} of a streamed answer, " for i in range(12)]
CHUNK_DELAY = 0.25


class _FirstChunkClock:
    """Wraps the emulator's SSE writer to note when each answer's first event has been written."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._original = gemini_module._Call._event

    def __enter__(self) -> _FirstChunkClock:
        original = self._original
        times = self.times

        async def event(call: Any, payload: Any, **kwargs: Any) -> None:
            await original(call, payload, **kwargs)
            if not getattr(call, "_bench_seen", False):
                call._bench_seen = True
                times.append(time.monotonic())

        gemini_module._Call._event = event  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc: object) -> None:
        gemini_module._Call._event = self._original  # type: ignore[method-assign]


async def run(workdir: Path, samples: int, label: str, **telegram: Any) -> dict[str, Any]:
    """``samples`` streamed answers, one after another, with the given telegram settings."""
    async with BenchTelegram(record=True) as tg, GeminiEmulator(api_key="bench-key", record=False) as gemini:
        gemini.default = Reply(chunks=CHUNKS, chunk_delay=CHUNK_DELAY)
        directory = workdir / f"streaming-{label}"
        proc = await start_gembot(directory, gemini.base_url, tg.base_url, **telegram)
        gaps: list[float] = []
        kinds: list[str] = []
        try:
            users = Users(tg, 6_000_000, samples + 1)
            with _FirstChunkClock() as clock:
                for i in range(samples + 1):  # the first one is a warm-up
                    chat_id = users.chats[i]["id"]
                    users.send(i, "tell me a long story")
                    within = CHUNK_DELAY * len(CHUNKS) + 15
                    if not await wait_until(lambda c=chat_id: c in tg.first_answer, within):  # type: ignore[misc]
                        raise RuntimeError(f"streaming: no answer within {within} s:\n{proc.log_tail()}")
                    if i == 0:
                        continue
                    first_chunk = clock.times[-1]
                    drafts = [d["at"] for d in tg.drafts if d["chat_id"] == chat_id and d["text"].strip()]
                    message = tg.first_answer[chat_id]
                    visible = min([*drafts, message])
                    kinds.append("draft" if drafts and drafts[0] <= message else "message")
                    gaps.append(visible - first_chunk)
        finally:
            await stop(proc)
    return {
        "label": label,
        "telegram": telegram,
        "samples": samples,
        "first_visible_ms": summary_ms(gaps),
        "visible_as": {k: kinds.count(k) for k in sorted(set(kinds))},
        "drafts": len(tg.drafts),
    }

"""How one answer is obtained from Gemini: which model and endpoint, and what each attempt cost.

The engine asks for an answer and receives a stream of chunks; every HTTP attempt is reported through
``on_attempt`` so it can be stored (llm_calls), audited and counted. Retries, fallbacks, the circuit
breaker and the local quota hook in here, behind the same interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import GeminiSettings
from bot.llm.errors import GeminiError
from bot.llm.gemini import GeminiClient
from bot.llm.types import LlmChunk, LlmRequest, Usage


@dataclass(frozen=True, slots=True)
class Attempt:
    """One Gemini HTTP request as it ended."""

    model: str
    endpoint: str
    attempt: int
    outcome: str  # "ok" or the error kind
    http_status: int | None
    gemini_status: str | None
    latency_s: float
    usage: Usage


AttemptListener = Callable[[Attempt], None]


class AnswerPolicy:
    """Gets one answer from Gemini with the configured model and endpoint (a single attempt)."""

    def __init__(self, client: GeminiClient, settings: GeminiSettings, clock: Clock) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock

    @property
    def model(self) -> str:
        """The primary model."""
        return self._settings.model

    async def answer(self, request: LlmRequest, on_attempt: AttemptListener) -> AsyncIterator[LlmChunk]:
        """Stream the answer (one chunk when streaming is off); raise the typed GeminiError on failure."""
        model, endpoint = self._settings.model, self._settings.base_url
        started = self._clock.monotonic()
        usage = Usage()
        try:
            if self._settings.stream:
                async for chunk in self._client.stream(request, model=model, base_url=endpoint):
                    if chunk.usage is not None:
                        usage = chunk.usage
                    yield chunk
            else:
                result = await self._client.generate(request, model=model, base_url=endpoint)
                usage = result.usage
                yield LlmChunk(text=result.text, finish_reason=result.finish_reason, usage=result.usage)
        except GeminiError as exc:
            on_attempt(
                Attempt(
                    model, endpoint, 1, exc.kind, exc.http_status, exc.status, self._elapsed(started), usage
                )
            )
            raise
        on_attempt(Attempt(model, endpoint, 1, "ok", 200, None, self._elapsed(started), usage))

    def _elapsed(self, started: float) -> float:
        return self._clock.monotonic() - started

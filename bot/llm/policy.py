"""How one answer is obtained from Gemini: retries, fallbacks, circuit breakers and the local quota.

The engine asks for an answer and receives a stream of chunks; every HTTP attempt is reported through
``on_attempt`` so it can be stored (llm_calls), audited and counted.

Routes are tried in order: the primary model at the primary base URL, then each ``fallback_models`` entry
there, then the same models at each ``fallback_base_urls`` entry. On one route:

* 429: wait ``RetryInfo.retryDelay`` (else full-jitter backoff) and retry; a daily/monthly quota or a delay
  over ``retry.max_wait`` ends the answer at once (the user is told when to come back). A daily/monthly
  quota frees at the end of its window (midnight US Pacific, or the month's end), so the user is told that
  time, or RetryInfo's if it is later: a shorter RetryInfo on such a 429 is not believed.
* 5xx, timeouts, connection errors, a stream that broke before any text: full-jitter backoff, up to
  ``retry.max_attempts``, then the next route. A base URL that refuses connections is left for good.
* 400 too large: once, with the older half of the history dropped. Other 4xx, safety blocks and empty
  replies: no retry. A bad key also alerts the admins.
* Misconfiguration (a model that does not exist, a generation config the model refuses, a region not
  served, the API not enabled): never retried on its route nor with a shorter context, and the admins are
  alerted; the next route is tried, since another model or base URL may accept what this one refuses (a
  mistyped primary model with a fallback configured still answers). When no route answers, the user is
  told the bot is misconfigured.
* Once any text has reached the user nothing is retried: a second try would repeat what they saw.

``retry.deadline`` bounds the whole answer: no wait starts that would end past it, and each attempt gets
what is left of it as its whole-call limit (a cut attempt ends as a timeout would, with kind
``deadline``). Waits go through the injected clock.

Breakers count 5xx, timeouts, connection errors and broken streams as failures, and any other answer
from Gemini as a success, except a 429 and a deadline cut: they free a half-open probe's slot and change
nothing else. A 429 proves the endpoint answers but not that it can serve a request, so it neither
closes nor opens a circuit.

The loop is hand-written rather than tenacity's: the decision depends on the route, the breaker, the
quota and whether text was shown, and an async generator that yields mid-attempt fits poorly in
``AsyncRetrying``. The backoff is tenacity's ``wait_random_exponential`` (full jitter) formula.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

from bot.alerts import AlertHub
from bot.clock import Clock
from bot.config import GeminiSettings
from bot.domain import AdminAlert
from bot.guards.quota import QuotaGuard, QuotaRefusal
from bot.i18n import Language, text
from bot.llm.circuit import CircuitBreaker, CircuitBreakers
from bot.llm.errors import (
    BadKeyError,
    BadRequestError,
    DeadlineExceededError,
    GeminiConnectionError,
    GeminiError,
    GeminiTimeoutError,
    MisconfiguredError,
    RateLimitedError,
    ServerError,
    StreamCutError,
)
from bot.llm.gemini import GeminiClient
from bot.llm.types import LlmChunk, LlmRequest, Usage
from bot.observability.logs import get_logger
from bot.quota_windows import window_end

log = get_logger(__name__)

__all__ = [
    "AnswerPolicy",
    "Attempt",
    "AttemptListener",
    "CircuitOpenError",
    "QuotaExceededError",
    "full_jitter_backoff",
    "shorten_context",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One Gemini HTTP request as it ended (``attempt`` numbers the requests of one answer from 1).

    ``latency_s`` is Gemini's time only: while the consumer holds a chunk, the clock is stopped.
    """

    model: str
    endpoint: str
    attempt: int
    outcome: str  # "ok", "cancelled" or the error kind
    http_status: int | None
    gemini_status: str | None
    latency_s: float
    usage: Usage


AttemptListener = Callable[[Attempt], None]


class QuotaExceededError(GeminiError):
    """The local quota (``gemini.quota``) refused the request before it was sent.

    ``retry_delay`` is the number of seconds until the full window rolls over. ``before_gemini`` is False
    when the refused request was a retry: Gemini had already been called for this answer.
    """

    kind: ClassVar[str] = "quota"

    def __init__(self, refusal: QuotaRefusal, retry_after: float, *, before_gemini: bool = True) -> None:
        super().__init__(
            f"local {refusal.window} quota of {refusal.limit} requests reached", retry_delay=retry_after
        )
        self.window = refusal.window
        self.limit = refusal.limit
        self.before_gemini = before_gemini


class CircuitOpenError(ServerError):
    """Every route's circuit is open: nothing was sent."""

    kind: ClassVar[str] = "circuit_open"


def full_jitter_backoff(retry: int, initial: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry ``retry`` (1 = the first): uniform in [0, min(cap, initial * 2^(retry-1))]."""
    return rng.uniform(0.0, min(cap, initial * 2.0 ** min(retry - 1, 32)))


def shorten_context(request: LlmRequest) -> LlmRequest | None:
    """The request with the older half of its past exchanges dropped (the last user message kept), or
    None when there is no history to drop."""
    pairs = (len(request.contents) - 1) // 2
    if pairs <= 0:
        return None
    keep = pairs // 2
    return replace(request, contents=request.contents[-(2 * keep + 1) :])


class _Stopwatch:
    """Running time that leaves out the pauses (a generator suspended at a ``yield``)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._total = 0.0
        self._since: float | None = clock.monotonic()

    def pause(self) -> None:
        if self._since is not None:
            self._total += self._clock.monotonic() - self._since
            self._since = None

    def resume(self) -> None:
        self._since = self._clock.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds counted so far."""
        running = self._clock.monotonic() - self._since if self._since is not None else 0.0
        return self._total + running


def _is_server_fault(exc: GeminiError) -> bool:
    """Failures that say the endpoint is unwell (worth a retry elsewhere, and counted by the breaker)."""
    return isinstance(exc, ServerError | StreamCutError)


@dataclass(slots=True)
class _Run:
    """The state of one answer across its attempts and routes."""

    request: LlmRequest
    deadline: float  # monotonic
    number: int = 0  # attempts made
    last_error: GeminiError | None = None
    shortened: bool = False
    shown: bool = False  # the current attempt has delivered text
    answered: bool = False
    hosts_down: set[str] = field(default_factory=set)


class _BreakerSlot:
    """One attempt's hold on its breaker: the verdict it gives, or the slot released when it gives none
    (cancelled, failed outside Gemini, refused by the quota or the deadline, rate-limited)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._settled = False

    def success(self) -> None:
        self._breaker.success()
        self._settled = True

    def failure(self) -> None:
        self._breaker.failure()
        self._settled = True

    async def __aenter__(self) -> _BreakerSlot:
        return self

    async def __aexit__(self, *_: object) -> None:
        if not self._settled:
            self._breaker.release()


class AnswerPolicy:
    """Gets one answer from Gemini under ``gemini.retry``, the fallbacks, the breakers and the quota."""

    def __init__(
        self,
        client: GeminiClient,
        settings: GeminiSettings,
        clock: Clock,
        *,
        quota: QuotaGuard | None = None,
        alerts: AlertHub | None = None,
        language: Language = "en",
        rng: random.Random | None = None,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._quota = quota
        self._alerts = alerts
        self._language = language
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        retry = settings.retry
        self.breakers = breakers or CircuitBreakers(
            threshold=retry.breaker_threshold, cooldown=retry.breaker_cooldown.total_seconds(), clock=clock
        )

    @property
    def model(self) -> str:
        """The primary model."""
        return self._settings.model

    def known_quota_refusal(self) -> QuotaExceededError | None:
        """The local quota's refusal by the counts last read (no database call), if a cap is known full."""
        refusal = self._quota.known_refusal() if self._quota is not None else None
        if refusal is None:
            return None
        return QuotaExceededError(refusal, refusal.retry_after(self._clock.now()))

    def routes(self, chosen: str | None = None) -> list[tuple[str, str]]:
        """(base URL, model) in the order they are tried: the ``chosen`` model first when given."""
        s = self._settings
        out: list[tuple[str, str]] = []
        for base_url in [s.base_url, *s.fallback_base_urls]:
            for model in [chosen or s.model, *s.fallback_models]:
                if (base_url, model) not in out:
                    out.append((base_url, model))
        return out

    async def answer(self, request: LlmRequest, on_attempt: AttemptListener) -> AsyncIterator[LlmChunk]:
        """Stream the answer (one chunk when streaming is off); raise the typed GeminiError on failure."""
        run = _Run(request, self._clock.monotonic() + self._settings.retry.deadline.total_seconds())
        for base_url, model in self.routes(request.model):
            if base_url in run.hosts_down:
                continue
            async with contextlib.aclosing(self._on_route(run, base_url, model, on_attempt)) as chunks:
                async for chunk in chunks:
                    yield chunk
            if run.answered:
                return
        raise run.last_error or CircuitOpenError("every Gemini endpoint's circuit is open; nothing was sent")

    async def _on_route(
        self, run: _Run, base_url: str, model: str, on_attempt: AttemptListener
    ) -> AsyncGenerator[LlmChunk, None]:
        """Attempts on one route until one answers, the route is given up, or the answer fails."""
        breaker = self.breakers.get(base_url, model)
        tries = 0
        while True:
            if not breaker.allow():
                log.info(
                    "gemini.circuit_skip", endpoint=breaker.name, retry_in_s=round(breaker.retry_in(), 1)
                )
                return
            async with _BreakerSlot(breaker) as slot:
                await self._may_send(run)
                tries += 1
                run.number += 1
                try:
                    attempt = self._attempt(run, slot, model, base_url, on_attempt)
                    async with contextlib.aclosing(attempt) as chunks:
                        async for chunk in chunks:
                            yield chunk
                except GeminiError as exc:
                    failed = exc
                    wait = self._after_failure(run, exc, tries, base_url, model)
                else:
                    run.answered = True
                    return
            if wait is None:
                return
            log.info(
                "gemini.retry",
                endpoint=breaker.name,
                attempt=run.number,
                kind=failed.kind,
                http_status=failed.http_status,
                wait_s=round(wait, 3),
            )
            if wait > 0:
                await self._clock.sleep(wait)

    async def _may_send(self, run: _Run) -> None:
        """Raise when the answer's deadline has passed (after a first attempt) or the local quota is full."""
        if run.number and self._clock.monotonic() >= run.deadline:
            raise run.last_error or GeminiTimeoutError("retry deadline passed")
        if self._quota is None:
            return
        refusal = await self._quota.acquire()
        if refusal is not None:
            raise QuotaExceededError(
                refusal, refusal.retry_after(self._clock.now()), before_gemini=run.number == 0
            )

    async def _attempt(
        self, run: _Run, slot: _BreakerSlot, model: str, base_url: str, on_attempt: AttemptListener
    ) -> AsyncGenerator[LlmChunk, None]:
        """One HTTP request: its chunks, its record through ``on_attempt`` and its breaker verdict."""
        watch = _Stopwatch(self._clock)
        usage = Usage()
        run.shown = False

        def record(outcome: str, http_status: int | None, status: str | None) -> None:
            on_attempt(
                Attempt(model, base_url, run.number, outcome, http_status, status, watch.elapsed, usage)
            )

        budget = run.deadline - self._clock.monotonic()
        try:
            async with contextlib.aclosing(self._call(run.request, model, base_url, budget)) as chunks:
                async for chunk in chunks:
                    usage = chunk.usage if chunk.usage is not None else usage
                    run.shown = run.shown or bool(chunk.text)
                    watch.pause()
                    yield chunk
                    watch.resume()
        except GeminiError as exc:
            record(exc.kind, exc.http_status, exc.status)
            # A 429 or our own deadline says nothing of the endpoint's health: no verdict, the slot is freed.
            if _is_server_fault(exc) and not isinstance(exc, DeadlineExceededError):
                slot.failure()
            elif not isinstance(exc, RateLimitedError | DeadlineExceededError):
                slot.success()
            raise
        except (GeneratorExit, asyncio.CancelledError):
            record("cancelled", None, None)  # the consumer stopped listening
            raise
        except Exception:
            record("error", None, None)
            raise
        record("ok", 200, None)
        slot.success()

    def _after_failure(
        self, run: _Run, exc: GeminiError, tries: int, base_url: str, model: str
    ) -> float | None:
        """Seconds to wait before retrying this route, None to go on to the next route; raises ``exc`` (or
        what the user is to be told instead) when the answer ends here."""
        run.last_error = exc
        if run.shown or isinstance(exc, DeadlineExceededError):
            raise exc
        if isinstance(exc, RateLimitedError) and exc.is_long_window:
            raise self._long_window(exc) from exc
        wait = self._next_wait(exc, tries, can_shorten=not run.shortened and len(run.request.contents) > 2)
        if wait is None:
            self._give_up_route(run, exc, base_url, model)
            return None
        if isinstance(exc, BadRequestError):
            shorter = shorten_context(run.request)
            assert shorter is not None  # _next_wait checked it
            log.info(
                "gemini.retry_shorter",
                contents_before=len(run.request.contents),
                contents_after=len(shorter.contents),
            )
            run.request, run.shortened = shorter, True
        if self._clock.monotonic() + wait > run.deadline:
            log.warning("gemini.retry_deadline", wait_s=wait, kind=exc.kind)
            raise exc
        return wait

    def _give_up_route(self, run: _Run, exc: GeminiError, base_url: str, model: str) -> None:
        """Leave this route for the next, or raise when no other route can help."""
        if isinstance(exc, BadKeyError):
            self._alert("gemini_bad_key", "alert_bad_key", exc, model)
            raise exc
        if isinstance(exc, MisconfiguredError):
            # Another model or base URL may well accept what this one refuses: the next route is tried.
            self._alert("gemini_misconfigured", "alert_misconfigured", exc, model)
            return
        if not _is_server_fault(exc):
            raise exc
        if isinstance(exc, GeminiConnectionError):
            run.hosts_down.add(base_url)

    def _long_window(self, exc: RateLimitedError) -> RateLimitedError:
        """A daily or monthly 429 as the user is told it: it frees at the end of its window.

        Gemini's daily and monthly quotas reset at midnight US Pacific, as ours do. A RetryInfo shorter
        than that cannot be about this quota: coming back then would meet the same 429.
        """
        window = "month" if any("PerMonth" in q for q in exc.quota_ids) else "day"
        now = self._clock.now()
        frees_in = (window_end(window, now) - now).total_seconds()
        return exc.waiting(max(frees_in, exc.retry_delay or 0.0))

    def _next_wait(self, exc: GeminiError, tries: int, *, can_shorten: bool) -> float | None:
        """Seconds to wait before retrying the same route, or None when it is not retried."""
        retry = self._settings.retry
        if isinstance(exc, BadRequestError):
            return 0.0 if exc.too_large and can_shorten else None
        if tries >= retry.max_attempts:
            return None
        backoff = full_jitter_backoff(
            tries, retry.initial_backoff.total_seconds(), retry.max_backoff.total_seconds(), self._rng
        )
        if isinstance(exc, RateLimitedError):
            wait = exc.retry_delay if exc.retry_delay is not None else backoff
            return wait if wait <= retry.max_wait.total_seconds() else None
        if _is_server_fault(exc):
            return backoff
        return None

    async def _call(
        self, request: LlmRequest, model: str, base_url: str, budget: float
    ) -> AsyncGenerator[LlmChunk, None]:
        if self._settings.stream:
            async with contextlib.aclosing(
                self._client.stream(request, model=model, base_url=base_url, budget=budget)
            ) as stream:
                async for chunk in stream:
                    yield chunk
        else:
            result = await self._client.generate(request, model=model, base_url=base_url, budget=budget)
            yield LlmChunk(
                text=result.text, finish_reason=result.finish_reason, usage=result.usage, extras=result.extras
            )

    def _alert(self, kind: str, key: str, exc: GeminiError, model: str) -> None:
        """Log ``exc`` as an operator error and tell the admins (the hub sends one per kind per 10 min)."""
        log.error(
            f"gemini.{exc.kind}",
            model=model,
            http_status=exc.http_status,
            gemini_status=exc.status,
            reason=exc.message[:300],
        )
        if self._alerts is not None:
            detail = " ".join(x for x in (f"HTTP {exc.http_status}", exc.status or "") if x)
            message = text(self._language, key, detail=detail, model=model, reason=exc.message[:300])
            self._alerts.publish(AdminAlert(kind, message))

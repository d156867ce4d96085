"""Per-endpoint circuit breakers: stop calling a Gemini endpoint that keeps failing.

An endpoint is one model at one base URL: an overloaded model must not close the door on a healthy
fallback model served by the same host. State lives in this process only; replicas learn separately,
which costs each at most ``threshold`` failed calls before its own circuit opens.
"""

from __future__ import annotations

from enum import StrEnum

from bot.clock import Clock
from bot.observability.logs import get_logger

log = get_logger(__name__)


class CircuitState(StrEnum):
    """closed: calls flow; open: calls fail fast; half_open: one probe decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` seconds one probe may pass.

    ``threshold == 0`` disables the breaker (every call is allowed).
    """

    def __init__(self, name: str, *, threshold: int, cooldown: float, clock: Clock) -> None:
        self.name = name
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cool-down has passed reads as half-open)."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._probing or self._clock.monotonic() - self._opened_at >= self._cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock.monotonic())

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state only the first caller (the probe) may."""
        if self._threshold <= 0:
            return True
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self._probing:
            return False
        self._probing = True
        log.info("gemini.circuit_probe", endpoint=self.name)
        return True

    def success(self) -> None:
        """The endpoint served the request (a reply, or a 4xx other than 429 such as a safety block)."""
        if self._opened_at is not None:
            log.warning("gemini.circuit_closed", endpoint=self.name)
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """The endpoint failed (5xx, timeout, connection error, broken stream)."""
        if self._threshold <= 0:
            return
        self._failures += 1
        # A failed probe re-opens at once; stragglers that started before the circuit opened change nothing.
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            log.warning(
                "gemini.circuit_open", endpoint=self.name, failures=self._failures, cooldown_s=self._cooldown
            )
            self._opened_at = self._clock.monotonic()
            self._probing = False

    def release(self) -> None:
        """The call ended without a verdict: a probe slot is freed, and the state is otherwise kept.

        Cancelled calls, calls cut by the answer's deadline, and 429s end this way. A 429 shows the
        endpoint answers but not that it can serve a request, so a rate-limited probe leaves the circuit
        half-open (the next call is the next probe), and in a closed circuit it neither counts as a
        failure nor resets the count.
        """
        self._probing = False


class CircuitBreakers:
    """One breaker per (base URL, model), created on first use."""

    def __init__(self, *, threshold: int, cooldown: float, clock: Clock) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, base_url: str, model: str) -> CircuitBreaker:
        """The breaker of ``model`` at ``base_url``."""
        key = (base_url, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            name = f"{base_url.split('://', 1)[-1].split('/', 1)[0]}/{model}"
            breaker = CircuitBreaker(
                name, threshold=self._threshold, cooldown=self._cooldown, clock=self._clock
            )
            self._breakers[key] = breaker
        return breaker

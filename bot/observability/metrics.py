"""Prometheus metrics in gembot's own registry; every name starts with ``gembot_``.

Only counters, histograms and gauges are exported: percentiles are computed by Prometheus
(``histogram_quantile``) so they aggregate correctly over replicas. docs/grafana-dashboard.json uses
these names, and a test checks that every name it uses is exported.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from bot.llm.tools import TOOL_NAMES
from bot.quota_windows import WINDOWS

# Gemini answers range from a fraction of a second to a minute; these buckets keep P50/P90/P95 within
# about 25-50 % of the true value anywhere between 0.2 s and 60 s.
LATENCY_BUCKETS: Final = (0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90)

# The stable ``outcome`` label of gembot_messages_total. The engine's finer outcome string goes into
# the ``detail`` label (a small fixed set too: the engine's outcomes and ``gemini_<error kind>``).
ANSWERED: Final = "answered"
FILTERED: Final = "filtered"
RATE_LIMITED: Final = "rate_limited"
QUOTA: Final = "quota"
OVER_BUDGET: Final = "over_budget"  # the sender used up a token budget of theirs
ERROR: Final = "error"
COMMAND: Final = "command"
REJECTED: Final = "rejected"
DUPLICATE: Final = "duplicate"
UNDELIVERED: Final = "undelivered"  # answered, but the platform refused to show the answer
SUPERSEDED: Final = "superseded"  # an engine detail (and inbox status), not an outcome label
MESSAGE_OUTCOMES: Final = (
    ANSWERED,
    FILTERED,
    RATE_LIMITED,
    QUOTA,
    OVER_BUDGET,
    ERROR,
    COMMAND,
    REJECTED,
    DUPLICATE,
    UNDELIVERED,
)

REFUSALS: Final = frozenset({FILTERED, RATE_LIMITED, QUOTA, OVER_BUDGET})
"""Outcomes where the message was refused rather than answered or failed (recorded for /stats)."""

REFUSAL_ACTION: Final = "message.refused"
TOOL_CALL_ACTION: Final = "gemini.tool_call"  # audit rows, outcome = the tool; /stats counts them
"""The audit action recording a refusal (its outcome is the stable label, params.detail the engine's)."""

_EXACT: Final[dict[str, str]] = {
    "answered": ANSWERED,
    # Our sensitive-word filter, on the message or on Gemini's reply, and Gemini's own safety blocks.
    "filtered": FILTERED,
    "reply_filtered": FILTERED,
    "gemini_prompt_blocked": FILTERED,
    "gemini_response_blocked": FILTERED,
    "rate_limited": RATE_LIMITED,
    # Gemini's 429 RESOURCE_EXHAUSTED is its quota (per minute or per day) running out.
    "gemini_rate_limited": QUOTA,
    "over_budget": OVER_BUDGET,
    "command": COMMAND,
    "duplicate": DUPLICATE,
    "undelivered": UNDELIVERED,
    "taken_over": DUPLICATE,  # another replica's follow-up answered it (told its sender to resend)
    SUPERSEDED: DUPLICATE,  # an inline query the same user replaced with a newer one before its answer
    # Accepted-but-not-for-Gemini messages, each answered with a notice.
    "not_allowed": REJECTED,
    "blocked": REJECTED,  # a user blocked from the admin page
    "unsupported": REJECTED,
    "empty": REJECTED,
    "too_long": REJECTED,
    "context_unreadable": REJECTED,  # what it asked to read (a channel to summarise) could not be read
    # The media gate: files refused before Gemini (bot.guards.media).
    "media_disabled": REJECTED,
    "media_too_many": REJECTED,
    "media_too_large": REJECTED,
    "media_unavailable": REJECTED,
    "media_unsupported": REJECTED,
    "media_misnamed": REJECTED,
}


def message_outcome(detail: str) -> str:
    """The stable outcome label for the engine's outcome string ``detail``."""
    known = _EXACT.get(detail)
    if known is not None:
        return known
    if "quota" in detail:  # the local quota cap, whatever the resilience layer names it
        return QUOTA
    return ERROR


class Metrics:
    """The counters, histograms and gauges the core and adapters update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.messages = Counter(
            "gembot_messages",
            "Messages received, by platform, stable outcome and the engine's detailed outcome",
            ["platform", "outcome", "detail"],
            registry=r,
        )
        self.gemini_requests = Counter(
            "gembot_gemini_requests",
            "Gemini HTTP requests (every attempt), by model, endpoint, outcome and HTTP status (0 = none)",
            ["model", "endpoint", "outcome", "http_status"],
            registry=r,
        )
        self.gemini_latency = Histogram(
            "gembot_gemini_latency_seconds",
            "Duration of Gemini HTTP requests, until the last byte",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "gembot_gemini_tokens",
            "Tokens reported by Gemini, by direction (in, out; out includes thinking tokens)",
            ["direction"],
            registry=r,
        )
        self.quota_used = Gauge(
            "gembot_quota_used",
            "Gemini requests counted against the local cap in the current window, by window",
            ["window"],
            registry=r,
        )
        self.quota_limit = Gauge(
            "gembot_quota_limit",
            "The local cap on Gemini requests, by window (0 = none)",
            ["window"],
            registry=r,
        )
        self.refusals = Counter(
            "gembot_refusals", "Messages refused before Gemini, by reason", ["reason"], registry=r
        )
        self.tool_calls = Counter(
            "gembot_tool_calls",
            "Gemini built-in tool use in answers: searches run, links read, code runs",
            ["tool"],
            registry=r,
        )
        self.feedback = Counter(
            "gembot_feedback",
            "Votes on answers (Slack feedback buttons, Telegram reactions): up, down, or withdrawn",
            ["platform", "value"],
            registry=r,
        )
        self.inline_queries = Counter(
            "gembot_inline_queries",
            "Telegram inline queries, by what became of them: answered, superseded (the user typed on), "
            "ignored (inline mode off), or refused (a notice instead of an answer)",
            ["outcome"],
            registry=r,
        )
        self.inline_chosen = Counter(
            "gembot_inline_chosen", "Telegram inline results the users chose to send", registry=r
        )
        self.media_files = Counter(
            "gembot_media_files",
            "Files sent to Gemini with messages, by family and how (inline, file: through the Files API)",
            ["family", "route"],
            registry=r,
        )
        self.media_deletions = Counter(
            "gembot_media_deletions",
            "Files API copies of erased files: deleted, or a deletion that failed and will be retried",
            ["outcome"],
            registry=r,
        )
        self.inflight = Gauge("gembot_inflight_conversations", "Answers being produced now", registry=r)
        self.adapter_reconnects = Counter(
            "gembot_adapter_reconnects", "Adapter reconnections, by platform", ["platform"], registry=r
        )
        # Series that exist from the start, so dashboards and rate() see zeros rather than gaps.
        for window in WINDOWS:
            self.quota_used.labels(window)
            self.quota_limit.labels(window)
        for direction in ("in", "out"):
            self.tokens.labels(direction)
        for tool in TOOL_NAMES:
            self.tool_calls.labels(tool)
        for outcome in ("deleted", "retry"):
            self.media_deletions.labels(outcome)

    def count_message(self, platform: str, detail: str) -> str:
        """Count one handled message; returns its stable outcome label."""
        outcome = message_outcome(detail)
        self.messages.labels(platform, outcome, detail).inc()
        return outcome

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

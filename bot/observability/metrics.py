"""Prometheus metrics in gembot's own registry; every name starts with ``gembot_``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

# Gemini answers range from a fraction of a second to a minute; these buckets keep P50/P90/P95 useful there.
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90)


class Metrics:
    """The counters, histograms and gauges the core and adapters update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.messages = Counter(
            "gembot_messages",
            "Messages received, by platform and outcome",
            ["platform", "outcome"],
            registry=r,
        )
        self.gemini_requests = Counter(
            "gembot_gemini_requests",
            "Gemini HTTP requests (every attempt), by model, endpoint, outcome and HTTP status",
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
            "Tokens reported by Gemini, by direction (in, out)",
            ["direction"],
            registry=r,
        )
        self.quota_used = Gauge(
            "gembot_quota_used",
            "Gemini requests counted against the local cap, by window",
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
        self.inflight = Gauge("gembot_inflight_conversations", "Answers being produced now", registry=r)
        self.adapter_reconnects = Counter(
            "gembot_adapter_reconnects", "Adapter reconnections, by platform", ["platform"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

"""Chart geometry for the admin page: plain numbers that templates/chart.html draws as inline SVG.

No JavaScript and no chart library: bars for the Gemini calls per bucket and one polyline per latency
percentile, scaled into a fixed viewBox that CSS stretches to the page's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.stats import format_ms
from bot.store import LatencyBucket

WIDTH = 480
HEIGHT = 220
LEFT = 52  # room for the latency labels
RIGHT = 8
TOP = 10
BOTTOM = 24  # room for the time labels
PERCENTILE_NAMES = ("p50", "p90", "p95")
_TIME_FORMATS = {"1h": "%H:%M", "24h": "%H:00", "30d": "%m-%d"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One bucket's calls."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    """One percentile's latency: separate runs of points (a bucket without calls breaks the line)."""

    name: str
    runs: list[str]
    dots: list[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Label:
    """A text at a position (axis ticks)."""

    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything chart.html needs to draw one window."""

    window: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[Label] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    max_calls: int = 0
    summary: str = ""

    @property
    def plot_left(self) -> int:
        """Where the plot area begins."""
        return LEFT

    @property
    def plot_right(self) -> int:
        """Where the plot area ends."""
        return WIDTH - RIGHT

    @property
    def baseline(self) -> int:
        """The y of the plot's bottom."""
        return HEIGHT - BOTTOM


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def latency_chart(window: str, buckets: Sequence[LatencyBucket]) -> Chart:
    """Calls per bucket (bars) and P50/P90/P95 latency (lines) of one window."""
    if not buckets:
        return Chart(window, summary="no data")
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / len(buckets)
    max_calls = max(b.calls for b in buckets)
    latencies = [v for b in buckets for v in b.percentiles if v is not None]
    top_ms = _nice_ceiling(max(latencies) if latencies else 0)
    base = TOP + plot_h
    time_format = _TIME_FORMATS.get(window, "%H:%M")

    def label(start: datetime) -> str:
        return start.strftime(time_format)

    bars = []
    for k, bucket in enumerate(buckets):
        if bucket.calls:
            height = plot_h * bucket.calls / max_calls
            bars.append(
                Bar(
                    round(LEFT + k * slot + slot * 0.15, 1),
                    round(base - height, 1),
                    round(slot * 0.7, 1),
                    round(height, 1),
                    f"{label(bucket.start)}: {bucket.calls} calls",
                )
            )
    lines = []
    for index, name in enumerate(PERCENTILE_NAMES):
        runs: list[str] = []
        dots: list[tuple[float, float]] = []
        run: list[str] = []
        for k, bucket in enumerate(buckets):
            value = bucket.percentiles[index] if index < len(bucket.percentiles) else None
            if value is None:
                if run:
                    runs.append(" ".join(run))
                run = []
                continue
            x = round(LEFT + (k + 0.5) * slot, 1)
            y = round(base - plot_h * value / top_ms, 1)
            run.append(f"{x},{y}")
            dots.append((x, y))
        if run:
            runs.append(" ".join(run))
        lines.append(Line(name, runs, dots))
    y_ticks = [
        Label(LEFT - 6, round(base - plot_h * f, 1) + 4, format_ms(top_ms * f), "end") for f in (0, 0.5, 1)
    ]
    picks = sorted({0, len(buckets) // 2, len(buckets) - 1})
    # The outer labels align with the plot's edges so they are never cut off.
    edges = {0: ("start", float(LEFT)), len(buckets) - 1: ("end", float(WIDTH - RIGHT))}
    x_labels = []
    for k in picks:
        anchor, x = edges.get(k, ("middle", round(LEFT + (k + 0.5) * slot, 1)))
        x_labels.append(Label(x, HEIGHT - 6, label(buckets[k].start), anchor))
    total = sum(b.calls for b in buckets)
    return Chart(
        window,
        bars=bars,
        lines=lines,
        y_ticks=y_ticks,
        x_labels=x_labels,
        max_calls=max_calls,
        summary=f"{total} Gemini calls in {len(buckets)} buckets; latency axis up to {format_ms(top_ms)}",
    )

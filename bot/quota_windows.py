"""Gemini's quota windows: minutes in UTC, days and months rolling over at midnight US Pacific."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
WINDOWS = ("minute", "day", "month")


def window_start(window: str, now: datetime) -> datetime:
    """The start (in UTC) of the ``minute``/``day``/``month`` window that holds ``now``."""
    if window == "minute":
        return now.astimezone(UTC).replace(second=0, microsecond=0)
    local = now.astimezone(PACIFIC)
    if window == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif window == "month":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown quota window {window!r}")
    # Re-localize: a DST change inside the day/month moves the UTC offset of its midnight.
    # Returned in UTC: arithmetic between two datetimes sharing a ZoneInfo ignores their offsets.
    return start.replace(tzinfo=None).replace(tzinfo=PACIFIC).astimezone(UTC)


def window_end(window: str, now: datetime) -> datetime:
    """The end (exclusive, in UTC) of the window that holds ``now``."""
    start = window_start(window, now)
    if window == "minute":
        return start + timedelta(minutes=1)
    local = start.astimezone(PACIFIC).replace(tzinfo=None)
    if window == "day":
        nxt = local + timedelta(days=1)
    else:
        nxt = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt.replace(tzinfo=PACIFIC).astimezone(UTC)


def window_key(window: str, now: datetime) -> str:
    """A stable text key of the window holding ``now`` (for counters)."""
    return window_start(window, now).isoformat()

"""Quota windows roll over at midnight US Pacific, DST included."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.quota_windows import PACIFIC, window_end, window_key, window_start


def test_minute_window_is_utc_minute() -> None:
    now = datetime(2026, 11, 28, 12, 34, 56, 789, tzinfo=UTC)
    assert window_start("minute", now) == datetime(2026, 11, 28, 12, 34, tzinfo=UTC)
    assert window_end("minute", now) == datetime(2026, 11, 28, 12, 35, tzinfo=UTC)


def test_day_rolls_over_at_pacific_midnight() -> None:
    before = datetime(2026, 11, 28, 7, 59, tzinfo=UTC)  # 23:59 PST on the 27th
    after = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # 00:00 PST on the 28th
    assert window_start("day", before) == datetime(2026, 11, 27, tzinfo=PACIFIC)
    assert window_start("day", after) == datetime(2026, 11, 28, tzinfo=PACIFIC)
    assert window_key("day", before) != window_key("day", after)
    assert window_end("day", before) == window_start("day", after)


def test_day_across_dst_change_is_23_hours() -> None:
    on_spring_forward = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)
    start, end = window_start("day", on_spring_forward), window_end("day", on_spring_forward)
    assert (end - start).total_seconds() == 23 * 3600
    assert start.astimezone(UTC) == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)


def test_month_window() -> None:
    now = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    assert window_start("month", now) == datetime(2026, 12, 1, tzinfo=PACIFIC)
    assert window_end("month", now) == datetime(2027, 1, 1, tzinfo=PACIFIC)
    new_year_utc = datetime(2027, 1, 1, 3, 0, tzinfo=UTC)  # still December in California
    assert window_key("month", new_year_utc) == window_key("month", now)

"""What a summary sends when the messages read do not all fit in a request's context."""

from __future__ import annotations

from adapters.slack.summaries import newest_that_fit


def test_the_newest_messages_that_fit_are_kept_in_order() -> None:
    lines = ["Alice: one", "Bob: two", "Carol: three"]
    assert newest_that_fit(lines, 1000) == lines
    assert newest_that_fit(lines, len("Bob: two") + len("Carol: three") + 2) == ["Bob: two", "Carol: three"]
    assert newest_that_fit(lines, len("Carol: three")) == []
    assert newest_that_fit([], 10) == []

"""The message catalogue."""

from __future__ import annotations

import re

import pytest

from bot.i18n import CATALOGUE, format_wait, pick_language


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert CATALOGUE["en"].keys() == CATALOGUE["zh"].keys()
    for key, english in CATALOGUE["en"].items():
        names = set(re.findall(r"\{(\w+)\}", english))
        assert names == set(re.findall(r"\{(\w+)\}", CATALOGUE["zh"][key])), key


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh-hans", "zh"),
        ("zh_CN", "zh"),
        ("ZH", "zh"),
        ("en-GB", "en"),
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_language_choice(tag: str | None, expected: str) -> None:
    assert pick_language(tag, "en") == expected


def test_unknown_language_falls_back_to_the_configured_default() -> None:
    assert pick_language("fr", "zh") == "zh"


@pytest.mark.parametrize(
    ("seconds", "english", "chinese"),
    [
        (0.2, "1 second", "1 秒"),
        (37, "37 seconds", "37 秒"),
        (61, "1 minute 1 second", "1 分钟 1 秒"),
        (65205, "18 hours 6 minutes", "18 小时 6 分钟"),
        (2 * 86400 + 7200, "2 days 2 hours", "2 天 2 小时"),
    ],
)
def test_waits_read_naturally(seconds: float, english: str, chinese: str) -> None:
    assert format_wait(seconds, "en") == english
    assert format_wait(seconds, "zh") == chinese

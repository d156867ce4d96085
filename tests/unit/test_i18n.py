"""The message catalogue."""

from __future__ import annotations

import re

import pytest

from bot.i18n import CATALOGUE, Entry, format_wait, pick_language, text


def _forms(entry: Entry) -> list[str]:
    return [entry] if isinstance(entry, str) else list(entry.values())


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert CATALOGUE["en"].keys() == CATALOGUE["zh"].keys()
    for key in CATALOGUE["en"]:
        names = [
            {n for form in _forms(CATALOGUE[language][key]) for n in re.findall(r"\{(\w+)\}", form)}
            for language in CATALOGUE
        ]
        assert all(n == names[0] for n in names), key


def test_plural_entries_have_an_other_form_and_english_a_one_form() -> None:
    for language, entries in CATALOGUE.items():
        for key, entry in entries.items():
            if not isinstance(entry, str):
                assert "other" in entry, (language, key)
                assert ("one" in entry) == (language == "en"), (language, key)


def test_a_plural_entry_needs_an_integer_count() -> None:
    assert text("en", "unit_day", count=1) == "1 day"
    assert text("en", "unit_day", count=0) == "0 days"
    assert text("zh", "unit_day", count=1) == "1 天"
    with pytest.raises(TypeError):
        text("en", "unit_day")


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

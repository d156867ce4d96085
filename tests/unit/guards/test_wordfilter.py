"""The sensitive-word filter: evasions caught, innocent words spared, masking and streaming invariants."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, FilterSettings, settings_from_mapping
from bot.guards.fold import fold, fold_word
from bot.guards.wordfilter import WordFilter, WordList

WORDS = [
    "fuck",
    "ass",
    "cunt",
    "penis",
    "sex",
    "rape",
    "anal",
    "cock",
    "kill yourself",
    "台独",
    "傻冒",
    "法轮功",
    "64",
]
ALLOW = ["平台独立"]
ENV = {"GEMINI_API_KEY": "AIzaSyTestKey0000000000000000000000000"}


def make(action: str = "mask", words: list[str] | None = None, allow: list[str] | None = None) -> WordFilter:
    return WordFilter(
        FilterSettings(
            words=WORDS if words is None else words, allow=ALLOW if allow is None else allow, action=action
        )  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ｆｕｃｋ this", "full-width letters"),
        ("FUCK this", "upper case"),
        ("FuCk this", "mixed case"),
        ("fu\u200bck this", "zero-width space inside"),
        ("f\u200du\u200cc\u2060k", "zero-width joiner, non-joiner and word joiner"),
        ("fu\u00adck", "soft hyphen (a format character)"),
        ("f.u.c.k this", "dots between letters"),
        ("f u c k this", "spaces between letters"),
        ("f-u_c*k", "symbols between letters"),
        ("f🙂u🙂c🙂k", "emoji between letters"),
        ("fu-ck", "a hyphen splitting the word"),
        ("I f u c k", "spelled out after a one-letter word"),
        ("ⓕⓤⓒⓚ", "circled letters"),
        ("𝐟𝐮𝐜𝐤", "mathematical bold letters"),
        ("fu\u0301ck", "combining mark inside"),
        ("what an ASS", "whole word at the end"),
        ("a.s.s", "short word spelled out"),
        ("KILL   your-self", "a listed phrase with other separators"),
        ("臺獨", "traditional characters"),
        ("台　独", "ideographic space between Chinese characters"),
        ("傻@冒", "symbol between Chinese characters"),
        ("法輪功", "one traditional character in a word"),
        ("六四", "Chinese numerals for a listed number"),
        ("⑥④", "circled digits"),
        ("❻➃", "dingbat digits"),
        ("６４", "full-width digits"),
    ],
)
def test_evasions_are_caught(text: str, why: str) -> None:
    assert make().check(text).flagged, why


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe",
        "class",
        "assassin",
        "passage",
        "Penistone",
        "Sussex",
        "grape juice",
        "therapist",
        "analysis",
        "cocktail",
        "was so nice",  # "ass" across two words, not at a word start
        "as soon as",
        "the pen is mightier",  # "penis" across two real words
        "a ss",
        "平台独立",  # contains 台独, allowed
        "skill yourself up",  # the phrase inside a longer word
        "1964",  # digits inside a longer number
    ],
)
def test_innocent_words_containing_a_listed_word_are_not_flagged(text: str) -> None:
    assert not make().check(text).flagged


def test_mask_replaces_the_original_span_with_as_many_stars() -> None:
    f = make("mask")
    assert f.check("oh f.u.c.k you").text == "oh ******* you"
    assert f.check("ＦＵＣＫ!").text == "****!"
    assert f.check("这是臺獨吗").text == "这是**吗"
    verdict = f.check("fu\u200bck off")
    assert verdict.text == "***** off"
    assert verdict.spans == ((0, 5),)


def test_hits_after_characters_outside_the_basic_plane_are_masked_in_place() -> None:
    # Emoji and rare Han characters take 4 bytes in UTF-8 and 2 units in UTF-16: spans count characters.
    f = make("mask")
    assert f.check("😀𠀀 fuck 台独 😀").text == "😀𠀀 **** ** 😀"
    assert f.check("𠀀" * 50 + "台独").text == "𠀀" * 50 + "**"


def test_block_keeps_the_text_and_flags() -> None:
    verdict = make("block").check("big ass")
    assert verdict.flagged
    assert verdict.text == "big ass"


def test_allow_list_only_spares_hits_inside_an_allowed_occurrence() -> None:
    f = make()
    assert not f.check("平台独立").flagged
    assert f.check("平台独立 台独").text == "平台独立 **"


def test_empty_list_flags_nothing() -> None:
    f = make(words=[], allow=[])
    assert not f.check("anything at all").flagged
    screen = f.screen_stream()
    assert screen.feed("abc") == "abc"
    assert screen.finish() == ""


# -- hypothesis ---------------------------------------------------------------------------------------

ALPHABET = st.characters(codec="utf-8") | st.sampled_from(list("fuckas台独傻冒 .\u200b\u0301ＦＵ臺獨六四"))
TEXTS = st.text(ALPHABET, max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_folding_never_crashes_and_maps_back(text: str) -> None:
    norm = fold(text)
    assert len(norm.chars) == len(norm.origin)
    assert all(0 <= i < len(norm.chars) for i in (*norm.separated, *norm.spaced, *norm.extended))
    assert norm.spaced <= norm.separated
    for i, start in enumerate(norm.origin):
        assert 0 <= start < norm.end(i) <= len(text)
    assert norm.origin == sorted(norm.origin)
    fold_word(text)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_masking_keeps_length_and_everything_outside_the_spans(text: str) -> None:
    verdict = make("mask").check(text)
    assert len(verdict.text) == len(text)
    inside = {i for start, end in verdict.spans for i in range(start, end)}
    for i, (before, after) in enumerate(zip(text, verdict.text, strict=True)):
        assert after == ("*" if i in inside else before)


def _chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(
    prefix=TEXTS,
    word=st.sampled_from(
        ["fuck", "f.u.c.k", "ＦＵＣＫ", "fu\u200bck", "臺獨", "傻@冒", "kill yourself", "ass"]
    ),
    suffix=TEXTS,
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_stream_never_shows_a_listed_word_split_across_chunks(
    prefix: str, word: str, suffix: str, cuts: list[int]
) -> None:
    text = f"{prefix} {word} {suffix}"
    for action in ("block", "mask"):
        f = make(action)
        screen = f.screen_stream()
        shown = ""
        for chunk in _chunked(text, cuts):
            shown += screen.feed(chunk)
            # Nothing shown so far may contain a listed word, whatever comes next.
            assert not f.check(shown).flagged, (action, shown)
        shown += screen.finish()
        assert screen.flagged
        assert not f.check(shown).flagged
        if action == "mask":
            assert shown == f.check(text).text
        else:
            assert text.startswith(shown)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=12))
def test_stream_output_equals_screening_the_whole_text(text: str, cuts: list[int]) -> None:
    f = make("mask")
    screen = f.screen_stream()
    shown = "".join(screen.feed(chunk) for chunk in _chunked(text, cuts)) + screen.finish()
    whole = f.check(text)
    assert shown == whole.text
    assert screen.flagged == whole.flagged


# -- word lists and reload ------------------------------------------------------------------------------


def test_words_file_loads_and_reloads_atomically(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# comment\nalpha\n\n贝塔\n", encoding="utf-8")
    f = WordFilter(FilterSettings(words=["gamma"], words_file=str(path), action="mask"))
    assert f.check("alpha 贝塔 gamma").text == "***** ** *****"
    old = f.words
    assert not f.reload_if_changed()  # unchanged file: the same list stays
    path.write_text("delta\n", encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert f.reload_if_changed()
    assert f.words is not old
    assert f.check("alpha delta gamma").text == "alpha ***** *****"


def test_unreadable_words_file_keeps_the_old_list(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("alpha\n", encoding="utf-8")
    f = WordFilter(FilterSettings(words_file=str(path)))
    path.unlink()
    assert not f.reload_if_changed()
    assert f.check("alpha").flagged


def test_fifty_thousand_words_load(tmp_path: Path) -> None:
    # How fast they load is measured by the benchmarks, not asserted here: this machine is shared.
    path = tmp_path / "words.txt"
    path.write_text("\n".join(f"词{i}条" if i % 2 else f"word{i}x" for i in range(50_000)), encoding="utf-8")
    f = WordFilter(FilterSettings(words_file=str(path)))
    assert f.words.size == 50_000
    assert f.check("this has word4x in it").flagged
    assert f.check("这里有词3条").flagged


def test_wordlist_reports_size_and_longest() -> None:
    words = WordList(["ab", "A.B", "c d e"], ["xyzw"])
    assert words.size == 2
    assert words.longest == 4


@pytest.mark.parametrize("word", ["🖕", "🖕🏻", "***", "☭", " ", "\ufe0f"])
def test_a_word_without_letters_or_digits_is_refused_at_start(tmp_path: Path, word: str) -> None:
    """It normalizes to nothing, so it would never match: the config says so instead of ignoring it."""
    with pytest.raises(ConfigError) as inline:
        settings_from_mapping({"filter": {"words": ["ok", word]}}, ENV)
    problem = f"{word!r} has no letter or digit, and the filter matches only those: it would never match"
    assert str(inline.value) == f"filter.words: {problem}"
    if not word.strip():
        return  # a blank line of a words file is skipped
    words = tmp_path / "words.txt"
    words.write_text(f"fuck\n{word}x\n{word}\n", encoding="utf-8")  # a symbol next to a letter is fine
    with pytest.raises(ConfigError) as listed:
        settings_from_mapping({"filter": {"words_file": str(words)}}, ENV)
    assert str(listed.value) == f"filter.words_file: '{words}': {problem}"


def test_a_reload_adding_a_word_that_never_matches_keeps_the_old_list(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("fuck\n", encoding="utf-8")
    word_filter = WordFilter(FilterSettings(words_file=str(words)))
    words.write_text("fuck\nshit\n🖕\n", encoding="utf-8")
    os.utime(words, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert not word_filter.reload_if_changed()
    assert word_filter.check("what the fuck").flagged
    assert not word_filter.check("oh shit").flagged  # the edited list is not in force

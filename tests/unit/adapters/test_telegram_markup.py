"""Markdown -> Telegram HTML, the plain fallback, and splitting under the 4096 limit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram.markup import (
    find_cut,
    render_telegram,
    split_plain,
    split_telegram_html,
    telegram_html,
    telegram_plain,
    utf16_len,
)
from tests.fakes.telegram import html_to_entities


def test_inline_formatting_becomes_telegram_tags() -> None:
    html = telegram_html("Some **bold**, *it*, ~~gone~~, `x < y` and [a link](https://e.com/?a=1&b=2).")
    assert html == (
        "Some <b>bold</b>, <i>it</i>, <s>gone</s>, <code>x &lt; y</code> and "
        '<a href="https://e.com/?a=1&amp;b=2">a link</a>.'
    )


def test_raw_html_and_special_characters_are_escaped() -> None:
    html = telegram_html("<script>alert(1)</script> & 3 > 2 <b>not bold</b>")
    assert "<script>" not in html and "<b>" not in html
    text, entities = html_to_entities(html)
    assert text == "<script>alert(1)</script> & 3 > 2 <b>not bold</b>"
    assert entities == []


def test_blocks_headings_lists_quotes_code_tables() -> None:
    markdown = (
        "# Title\n\nIntro.\n\n- one\n- two\n  1. nested\n\n> quoted\n> > deeper\n\n"
        "```python\nif a < b:\n    pass\n```\n\n| a | bb |\n|---|----|\n| 1 | 2  |\n\n---\n"
    )
    html = telegram_html(markdown)
    assert html.startswith("<b>Title</b>\n\nIntro.\n\n• one\n• two\n  1. nested")
    assert "<blockquote>quoted\ndeeper</blockquote>" in html  # Telegram does not nest quotes
    assert '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>' in html
    assert "<pre>a | bb\n--+---\n1 | 2</pre>" in html
    html_to_entities(html)  # accepted by Telegram's parser


def test_unsafe_links_keep_only_their_text() -> None:
    assert telegram_html("[click](ftp://files.example/f)") == "click"
    assert "href" not in telegram_html("[click](javascript:alert(1))")


def test_plain_fallback_is_the_shown_text() -> None:
    html = telegram_html("**a** &lt; `b`")
    assert telegram_plain(html) == html_to_entities(html)[0]


def test_find_cut_prefers_paragraphs_outside_code() -> None:
    text = "para one.\n\n" + "x" * 50 + "\n\ncode\n\ncode\n" + "tail"
    code_start = text.index("code")
    cut = find_cut(text, 70, keep_whole=[(code_start, len(text))])
    assert text[:cut].endswith("x" * 50)


def test_find_cut_falls_back_to_sentences_words_and_hard_cuts() -> None:
    assert find_cut("One sentence here. Another one follows", 25) == len("One sentence here.")
    assert find_cut("word " * 10, 12) == len("word word")
    assert find_cut("x" * 30, 10) == 10


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_len("a😀") == 3
    assert all(utf16_len(part) <= 10 for part in split_plain("😀" * 25, 10))


def test_a_6000_character_answer_becomes_two_valid_messages() -> None:
    paragraph = ("Some **bold** words in a sentence. " * 10).strip()
    parts = render_telegram("\n\n".join([paragraph] * 18))
    assert len(parts) == 2
    shown = [html_to_entities(part)[0] for part in parts]
    assert all(utf16_len(text) <= 4096 for text in shown)


def test_code_block_is_kept_whole_when_it_fits() -> None:
    code = "```\n" + "line of code\n" * 200 + "```"
    parts = render_telegram("intro " * 500 + "\n\n" + code)
    assert len(parts) == 2
    assert parts[1].startswith("<pre>") and parts[1].endswith("</pre>")


def test_a_code_block_after_a_short_intro_moves_whole_to_the_next_message() -> None:
    # The break before the block lies in the first third of the window: it is taken all the same.
    intro = ("A short introduction to the code below. " * 25).strip()
    code = "```python\n" + "value = compute(value)  # step\n" * 116 + "```"
    assert 3500 <= len(code) <= 3700 and len(intro) < 4096 // 3
    parts = render_telegram(f"{intro}\n\n{code}")
    assert len(parts) == 2
    assert parts[0] == intro
    assert parts[1].startswith('<pre><code class="language-python">')
    assert parts[1].endswith("</code></pre>")
    assert html_to_entities(parts[1])[0].count("\n") == 115  # every line of the block in one message


def test_find_cut_moves_a_fitting_block_whole_but_splits_one_too_long() -> None:
    text = "intro\n\n" + "c" * 30 + "\nmore"
    block = (7, len(text))
    assert find_cut(text, 30, keep_whole=[block]) == 30  # the block (35) does not fit 30: cut inside it
    assert find_cut(text, 40, keep_whole=[block]) == len("intro")


def test_a_huge_code_block_is_split_with_tags_balanced() -> None:
    parts = render_telegram("```js\n" + "const x = 1; // <&>\n" * 600 + "```")
    assert len(parts) >= 3
    for part in parts:
        assert part.startswith('<pre><code class="language-js">') and part.endswith("</code></pre>")
        assert utf16_len(html_to_entities(part)[0]) <= 4096


def test_notice_is_appended_as_plain_text() -> None:
    [part] = render_telegram("**Answer**", notice="<The reply was cut short.>")
    assert part == "<b>Answer</b>\n\n&lt;The reply was cut short.&gt;"
    assert render_telegram("", notice="only a notice") == ["only a notice"]


_markdown = st.lists(
    st.sampled_from(
        [
            "word",
            "**bold**",
            "*it*",
            "`co<de>`",
            "[l](https://x.y)",
            "\n\n",
            "\n",
            " ",
            ". ",
            "&",
            "😀",
            "\n```py\nx = 1\n```\n",
            "- item\n",
            "> quote\n",
            "# head\n",
            "<tag>",
        ]
    ),
    max_size=400,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(_markdown, st.integers(min_value=20, max_value=400))
def test_every_part_is_valid_and_fits_and_nothing_is_lost(markdown: str, limit: int) -> None:
    html = telegram_html(markdown)
    whole, _ = html_to_entities(html)
    parts = split_telegram_html(html, limit)
    shown = [html_to_entities(part)[0] for part in parts]
    assert all(utf16_len(text) <= limit for text in shown)
    assert "".join(shown).replace(" ", "").replace("\n", "") == whole.replace(" ", "").replace("\n", "")

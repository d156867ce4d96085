"""Markdown to Slack mrkdwn, and splitting under Slack's message size."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.slack.markup import MESSAGE_LIMIT, ZWSP, escape, render_chunks, split, to_mrkdwn


def test_inline_formatting() -> None:
    md = "Some **bold**, *italic*, ~~gone~~, `a < b` and [docs](https://x.io/?a=1&b=2) <https://auto.io>"
    assert to_mrkdwn(md) == (
        "Some *bold*, _italic_, ~gone~, `a &lt; b` and <https://x.io/?a=1&amp;b=2|docs> <https://auto.io>"
    )


def test_escaping_and_literal_html() -> None:
    assert escape("a & <b> c") == "a &amp; &lt;b&gt; c"
    assert to_mrkdwn("x <script>alert(1)</script> & y") == "x &lt;script&gt;alert(1)&lt;/script&gt; &amp; y"
    assert to_mrkdwn("<@U123> <!here>") == "&lt;@U123&gt; &lt;!here&gt;"  # Gemini cannot ping anyone


def test_headings_lists_quotes_code_and_rules() -> None:
    md = (
        "# Title\n\n- one\n  - nested **b**\n- two\n\n3. three\n4. four\n\n> quoted\n\n"
        "```py\nif a < b:\n    pass\n```\n\n---"
    )
    assert to_mrkdwn(md) == (
        "*Title*\n\n• one\n    • nested *b*\n• two\n\n3. three\n4. four\n\n> quoted\n\n"
        "```\nif a &lt; b:\n    pass\n```\n\n───"
    )


def test_heading_with_bold_inside_stays_one_bold() -> None:
    assert to_mrkdwn("## The **real** thing") == "*The real thing*"


def test_table_becomes_aligned_monospace() -> None:
    md = "| name | n |\n|---|---|\n| alpha | 1 |\n| 中文 | 22 |"
    assert to_mrkdwn(md) == "```\nname  | n\n------+---\nalpha | 1\n中文  | 22\n```"


def test_link_with_pipe_and_same_label() -> None:
    assert to_mrkdwn("[https://a.io/x|y](https://a.io/x|y)") == "<https://a.io/x%7Cy>"
    assert to_mrkdwn("[t](https://a.io/x|y)") == "<https://a.io/x%7Cy|t>"


def test_fence_inside_code_cannot_close_it() -> None:
    out = to_mrkdwn("````\n```\ninner\n```\n````")
    assert out.count("```") == 2


def test_split_prefers_paragraphs_and_reopens_code() -> None:
    text = "\n\n".join(["para " * 30] * 3)
    chunks = split(text, 200)
    assert all(len(c) <= 200 for c in chunks)
    code = "```\n" + "\n".join(f"line {i}" for i in range(100)) + "\n```"
    pieces = split(code, 120)
    assert len(pieces) > 1
    assert all(p.startswith("```\n") and p.endswith("\n```") and len(p) <= 120 for p in pieces)
    assert "\n".join(p[4:-4] for p in pieces) == code[4:-4]


def test_split_never_cuts_links_or_entities() -> None:
    line = " ".join(["<https://example.com/very/long/path|label>", "&amp;&lt;&gt;"] * 50).replace(" ", "")
    for piece in split(line, 100):
        assert len(piece) <= 100
        assert piece.count("<") == piece.count(">")
        assert not re.search(r"&[a-z]*$", piece)


def test_render_chunks_of_long_answer() -> None:
    md = "\n\n".join(f"Paragraph {i} with **bold** text. " * 20 for i in range(40))
    chunks = render_chunks(md)
    assert len(chunks) > 1 and all(len(c) <= MESSAGE_LIMIT for c in chunks)
    assert "".join(chunks).count("*bold*") == 40 * 20


@settings(max_examples=150, deadline=None)
@example("x [" + "a " * 30 + "](b) y", 40)  # a link longer than a piece
@example("- >", 40)  # a quote inside a list item: its marker is text there, escaped
@given(st.text(alphabet=st.sampled_from(list("ab <>&*_`~[]()|#-\n")), max_size=1500), st.integers(40, 400))
def test_split_keeps_every_piece_valid(markdown: str, limit: int) -> None:
    rendered = to_mrkdwn(markdown)
    pieces = split(rendered, limit)
    for piece in pieces:
        assert 0 < len(piece) <= limit
        assert piece.count("```") % 2 == 0
        unquoted = re.sub(r"(?m)^(?:> ?)+", "", piece)
        assert unquoted.count("<") == unquoted.count(">")  # links are never cut
        assert not re.search(r"&[a-z]*$", piece)
    # Nothing is lost (a link longer than a piece becomes its label and URL as text).
    assert _flat("".join(pieces)) == _flat(rendered)


def _flat(mrkdwn: str) -> str:
    unlinked = re.sub(r"<([^|>]*)(?:\|([^>]*))?>", lambda m: (m[2] or "") + m[1], mrkdwn)
    return re.sub(r"\s+|```", "", unlinked)


def test_escaped_markers_stay_literal() -> None:
    # No backslash escapes in mrkdwn: a zero-width space (a word boundary for Slack) after a marker that
    # could open formatting and before one that could close it.
    assert to_mrkdwn(r"\*not bold\*") == f"*{ZWSP}not bold{ZWSP}*"
    assert to_mrkdwn(r"\_not italic\_ and ~3~ days") == f"_{ZWSP}not italic{ZWSP}_ and ~{ZWSP}3{ZWSP}~ days"
    assert to_mrkdwn(r"\`not code\`") == f"`{ZWSP}not code{ZWSP}`"
    # Markers that cannot pair stay untouched (nothing invisible to copy along).
    assert to_mrkdwn("my_var_name is 2 * 3") == "my_var_name is 2 * 3"
    # A literal marker at the edge of real emphasis leaves the real marker able to close.
    assert to_mrkdwn(r"**x\***") == f"*x{ZWSP}**"


def test_emphasis_inside_a_word_gets_a_boundary() -> None:
    assert to_mrkdwn("**a**b and c**d** and e**f**g") == f"*a*{ZWSP}b and c{ZWSP}*d* and e{ZWSP}*f*{ZWSP}g"
    assert to_mrkdwn("plain **bold** text") == "plain *bold* text"


def test_split_never_cuts_a_leading_link() -> None:
    link = "<https://example.com/a/b|" + "label words " * 4 + "here>"
    pieces = split(link + "x" * 80, 100)
    assert pieces[0].startswith(link)
    assert all(piece.count("<") == piece.count(">") for piece in pieces)


def test_split_turns_a_link_longer_than_a_piece_into_text() -> None:
    line = "<https://example.com/" + "p" * 30 + "|" + "a long label " * 12 + ">more text"
    pieces = split(line, 60)
    assert all(len(piece) <= 60 and "<" not in piece and ">" not in piece for piece in pieces)
    assert " ".join(pieces).split() == [
        *("a long label " * 12).split(),
        "https://example.com/" + "p" * 30,
        "more",
        "text",
    ]

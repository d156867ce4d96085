"""Sources, searches and thoughts under and above an answer, within each platform's length rules."""

from __future__ import annotations

from adapters.slack.markup import MESSAGE_LIMIT
from adapters.slack.markup import render_chunks as slack_chunks
from adapters.slack.sources import sources_mrkdwn, thoughts_mrkdwn
from adapters.telegram.markup import TELEGRAM_TEXT_LIMIT, render_telegram, utf16_len
from adapters.telegram.sources import sources_html, thoughts_html
from bot.domain import Link, Sourcing
from bot.llm.parts import read_parts
from tests.fakes.telegram import html_to_entities

SOURCING = Sourcing(
    sources=(Link("https://a.example/x?y=1&z=2", "a <b> & c"), Link("https://b.example/", "b.example")),
    searches=(Link("https://www.google.com/search?q=a+%26+b", "a & b"),),
    failed="Could not open c.example.",
    thoughts="Thinking <hard> & long.",
)


def test_telegram_escapes_titles_and_links() -> None:
    text, entities = html_to_entities(sources_html(SOURCING))
    assert text == ("Sources\n1. a <b> & c\n2. b.example\n\nSearched: a & b\n\nCould not open c.example.")
    urls = [e["url"] for e in entities if e["type"] == "text_link"]
    assert urls == [
        "https://a.example/x?y=1&z=2",
        "https://b.example/",
        "https://www.google.com/search?q=a+%26+b",
    ]
    quote, quote_entities = html_to_entities(thoughts_html(SOURCING))
    assert quote == "Thoughts\nThinking <hard> & long."
    assert {e["type"] for e in quote_entities} == {"expandable_blockquote", "bold"}


def test_slack_escapes_titles_and_links() -> None:
    assert sources_mrkdwn(SOURCING) == (
        "*Sources*\n1. <https://a.example/x?y=1&amp;z=2|a &lt;b&gt; &amp; c>\n2. <https://b.example/|b.example>"
        "\n\nSearched: <https://www.google.com/search?q=a+%26+b|a &amp; b>\n\n_Could not open c.example._"
    )
    assert thoughts_mrkdwn(SOURCING) == ">_Thoughts_\n>Thinking &lt;hard&gt; &amp; long."
    assert sources_mrkdwn(None) == thoughts_mrkdwn(Sourcing()) == ""


def test_an_answer_mostly_of_code_output_splits_into_valid_messages() -> None:
    output = "\n".join(f"row {i}: {'x' * 40}" for i in range(250))
    answer = read_parts(
        [
            {"text": "Here is the table:"},
            {"executableCode": {"language": "PYTHON", "code": "for i in range(250): print(i)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": output}},
            {"text": "Done."},
        ]
    ).text
    parts = render_telegram(answer, head=thoughts_html(SOURCING), tail=sources_html(SOURCING))
    assert len(parts) >= 3
    shown = []
    for part in parts:
        text, entities = html_to_entities(part)
        assert utf16_len(text) <= TELEGRAM_TEXT_LIMIT
        shown.append(text)
        assert any(e["type"] == "pre" for e in entities) or part is parts[-1] or part is parts[0]
    joined = "\n".join(shown)
    assert all(f"row {i}:" in joined for i in range(250))
    chunks = slack_chunks(answer)
    assert len(chunks) >= 2 and all(len(c) <= MESSAGE_LIMIT for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)  # every piece's code block is closed

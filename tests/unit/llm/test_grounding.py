"""Citations from grounding metadata: byte offsets placed right in any script, sources numbered and capped."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.llm.grounding import SEARCH_URL, GroundingCollector, Source, cite


def chunk(uri: str, title: str = "") -> dict[str, Any]:
    return {"web": {"uri": uri, "title": title}}


def support(text: str, stretch: str, *chunks: int, occurrence: int = 0) -> dict[str, Any]:
    """A support for ``stretch`` of ``text`` with its offsets in UTF-8 bytes, as Gemini reports them."""
    encoded, wanted = text.encode(), stretch.encode()
    start = -1
    for _ in range(occurrence + 1):
        start = encoded.index(wanted, start + 1)
    return {
        "segment": {"startIndex": start, "endIndex": start + len(wanted), "text": stretch},
        "groundingChunkIndices": list(chunks),
    }


def grounded(text: str, chunks: list[dict[str, Any]], supports: list[dict[str, Any]], **extra: Any) -> Any:
    collector = GroundingCollector()
    collector.add({"groundingMetadata": {"groundingChunks": chunks, "groundingSupports": supports, **extra}})
    return collector.result()


def test_markers_follow_the_supported_sentences_in_english() -> None:
    text = "Oslo is the capital of Norway. It has about 700,000 people. Nice city."
    result = cite(
        text,
        grounded(
            text,
            [chunk("https://a.example/oslo", "a.example"), chunk("https://b.example/pop", "b.example")],
            [
                support(text, "Oslo is the capital of Norway.", 0),
                support(text, "It has about 700,000 people.", 0, 1),
            ],
        ),
        max_sources=5,
    )
    assert result.text == (
        "Oslo is the capital of Norway.[\\[1\\]](https://a.example/oslo)"
        " It has about 700,000 people.[\\[1\\]](https://a.example/oslo)[\\[2\\]](https://b.example/pop)"
        " Nice city."
    )
    assert result.sources == (
        Source("https://a.example/oslo", "a.example"),
        Source("https://b.example/pop", "b.example"),
    )


def test_byte_offsets_in_chinese_with_emoji() -> None:
    text = "北京是中国的首都🇨🇳。人口约两千万😀。"
    result = cite(
        text,
        grounded(
            text,
            [chunk("https://zh.example/1", "zh.example")],
            [support(text, "北京是中国的首都🇨🇳。", 0), support(text, "人口约两千万😀。", 0)],
        ),
        max_sources=5,
    )
    marker = "[\\[1\\]](https://zh.example/1)"
    assert result.text == f"北京是中国的首都🇨🇳。{marker}人口约两千万😀。{marker}"


def test_markers_inside_markdown_lists_and_emphasis() -> None:
    text = "Facts:\n\n- **Rust** 1.80 was released in July.\n- Python 3.13 added a *free-threaded* build.\n"
    result = cite(
        text,
        grounded(
            text,
            [chunk("https://rust.example/", "rust.example"), chunk("https://py.example/", "py.example")],
            [
                support(text, "**Rust** 1.80 was released in July.", 0),
                support(text, "Python 3.13 added a *free-threaded* build.", 1),
            ],
        ),
        max_sources=5,
    )
    assert "- **Rust** 1.80 was released in July.[\\[1\\]](https://rust.example/)\n" in result.text
    assert "- Python 3.13 added a *free-threaded* build.[\\[2\\]](https://py.example/)\n" in result.text


def test_segment_text_without_markup_still_places_by_offsets() -> None:
    text = "- **Bold** claim here\n- other"
    stretch = "**Bold** claim here"
    item = support(text, stretch, 0)
    item["segment"]["text"] = "Bold claim here"  # Gemini sometimes reports the stretch without its markers
    result = cite(text, grounded(text, [chunk("https://s.example/")], [item]), max_sources=5)
    assert result.text.startswith("- **Bold** claim here[\\[1\\]](https://s.example/)\n")
    assert result.sources == (Source("https://s.example/", "s.example"),)  # title falls back to the host


def test_offsets_that_do_not_match_fall_back_to_the_text() -> None:
    text = "Alpha beta. Gamma delta."
    item = {"segment": {"startIndex": 0, "endIndex": 5, "text": "Gamma delta."}, "groundingChunkIndices": [0]}
    result = cite(text, grounded(text, [chunk("https://g.example/")], [item]), max_sources=5)
    assert result.text == "Alpha beta. Gamma delta.[\\[1\\]](https://g.example/)"


def test_sources_deduplicated_numbered_by_first_citation_and_capped() -> None:
    text = "One. Two. Three."
    chunks = [chunk(f"https://s{i}.example/") for i in range(4)] + [chunk("https://s2.example/")]
    supports = [support(text, "One.", 3, 4), support(text, "Two.", 2), support(text, "Three.", 0, 1)]
    result = cite(text, grounded(text, chunks, supports), max_sources=2)
    assert [s.uri for s in result.sources] == ["https://s3.example/", "https://s2.example/"]
    one, two = "[\\[1\\]](https://s3.example/)", "[\\[2\\]](https://s2.example/)"
    assert result.text == f"One.{one}{two} Two.{two} Three."  # Three's sources are past the cap


def test_no_marker_inside_a_code_block_but_the_source_is_listed() -> None:
    text = "Run this:\n\n```python\nprint(1)\n```\n"
    result = cite(text, grounded(text, [chunk("https://c.example/")], [support(text, "print(1)", 0)]), 5)
    assert result.text == text
    assert result.sources == (Source("https://c.example/", "c.example"),)


def test_searches_and_failed_urls_are_reported() -> None:
    collector = GroundingCollector()
    collector.add(
        {"groundingMetadata": {"webSearchQueries": ["oslo population 2026", "oslo population 2026"]}}
    )
    collector.add(
        {
            "urlContextMetadata": {
                "urlMetadata": [
                    {
                        "retrievedUrl": "https://ok.example/",
                        "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS",
                    },
                    {
                        "retrievedUrl": "https://down.example/",
                        "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_ERROR",
                    },
                ]
            }
        }
    )
    result = cite("Text.", collector.result(), 5)
    assert result.searches == (Source(SEARCH_URL + "oslo+population+2026", "oslo population 2026"),)
    assert result.failed_urls == ("https://down.example/",)


def test_streamed_metadata_accumulates_chunk_indices_across_chunks() -> None:
    text = "First claim. Second claim."
    collector = GroundingCollector()
    collector.add({"groundingMetadata": {"groundingChunks": [chunk("https://one.example/")]}})
    collector.add(
        {
            "groundingMetadata": {
                "groundingChunks": [chunk("https://two.example/")],
                "groundingSupports": [support(text, "First claim.", 0), support(text, "Second claim.", 1)],
            }
        }
    )
    result = cite(text, collector.result(), 5)
    assert result.text == (
        "First claim.[\\[1\\]](https://one.example/) Second claim.[\\[2\\]](https://two.example/)"
    )


def test_malformed_metadata_is_skipped() -> None:
    collector = GroundingCollector()
    collector.add(
        {
            "groundingMetadata": {
                "groundingChunks": [{"web": {"uri": "javascript:alert(1)"}}, "x", {"retrievedContext": {}}],
                "groundingSupports": [
                    {"segment": "x"},
                    {"segment": {"endIndex": -1}, "groundingChunkIndices": [0]},
                ],
                "webSearchQueries": [1, None, " "],
            }
        }
    )
    result = collector.result()
    assert not result.supports and not result.queries
    assert cite("Text.", result, 5).sources == ()


@given(st.text(st.characters(blacklist_characters="`~"), min_size=1, max_size=60), st.data())
def test_any_stretch_gets_its_marker_right_after_it(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    stretch = text[start:end]
    prefix = len(text[:start].encode("utf-8", "surrogatepass"))
    item = {
        "segment": {
            "startIndex": prefix,
            "endIndex": prefix + len(stretch.encode("utf-8", "surrogatepass")),
            "text": stretch,
        },
        "groundingChunkIndices": [0],
    }
    result = cite(text, grounded(text, [chunk("https://p.example/")], [item]), 5)
    marker = "[\\[1\\]](https://p.example/)"
    assert result.text == text[:end] + marker + text[end:]

"""Grounded answers shared by the Telegram and Slack end-to-end tests: what Gemini sends, and what the
user must see (markers after the supported sentences, sources, searches)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini import Reply
from tests.fakes.grounded import REDIRECT, code_parts, grounding, source, url_context

SEARCH = "https://www.google.com/search?q="
GEMINI_SETTINGS: dict[str, Any] = {
    "model": "gemini-3-flash-preview",
    "fallback_models": ["gemini-2.5-flash", "gemini-2.0-flash-lite"],
    "tools": {"google_search": True, "url_context": True, "code_execution": True},
    "max_sources": 3,
    "generation": {"thinking_level": "low", "show_thoughts": True},
    "retry": {"max_attempts": 1},
}
# Gemini 2.0 Flash-Lite takes none of the built-in tools: the emulator refuses each with a 400.
REJECTED_TOOLS = {"gemini-2.0-flash-lite": {"googleSearch", "urlContext", "codeExecution"}}
MARKER = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Case:
    """A grounded answer: Gemini's reply, and the marked text the user must see (plain, ``[n]``)."""

    name: str
    reply: Reply
    shown: str
    sources: list[tuple[str, str]] = field(default_factory=list)  # (title, uri) in order
    searches: list[str] = field(default_factory=list)


def _case(name: str, text: str, marked: str, queries: list[str], chunks: list[Any], cited: list[Any]) -> Case:
    pieces = re.findall(r".{1,8}", text, re.DOTALL)  # streamed in small pieces, slowly enough to preview
    reply = Reply(chunks=pieces, grounding=grounding(text, queries, chunks, cited), chunk_delay=0.2)
    sources = []
    for chunk in chunks:
        pair = (chunk["web"]["title"], chunk["web"]["uri"])
        if pair not in sources:
            sources.append(pair)
    return Case(name, reply, marked, sources, queries)


ENGLISH = _case(
    "english",
    "Oslo is the capital of Norway. It had about 717,000 people in 2025. It is a nice city.",
    "Oslo is the capital of Norway.[1] It had about 717,000 people in 2025.[1][2] It is a nice city.",
    ["capital of Norway", "Oslo population 2025"],
    [source("oslo1", "regjeringen.no"), source("pop2", "ssb.no"), source("oslo1", "regjeringen.no")],
    [("Oslo is the capital of Norway.", [0]), ("It had about 717,000 people in 2025.", [2, 1])],
)
CHINESE = _case(
    "chinese",
    "北京是中国的首都🇨🇳。人口约两千万😀。故宫很有名🏯。",
    "北京是中国的首都🇨🇳。[1]人口约两千万😀。[2]故宫很有名🏯。",
    ["北京 人口"],
    [source("bj1", "gov.cn"), source("bj2", "stats.gov.cn")],
    [("北京是中国的首都🇨🇳。", [0]), ("人口约两千万😀。", [1])],
)
LIST = _case(
    "list",
    "Recent releases:\n\n- **Python 3.14** came out in October.\n- Rust 1.90 shipped in *September*.\n",
    "Recent releases:\n\n• Python 3.14 came out in October.[1]\n• Rust 1.90 shipped in September.[2]",
    ["python 3.14 release", "rust 1.90 release"],
    [source("py", "python.org"), source("rs", "blog.rust-lang.org")],
    [("**Python 3.14** came out in October.", [0]), ("Rust 1.90 shipped in *September*.", [1])],
)
CASES = [ENGLISH, CHINESE, LIST]

FAILED_URL = Reply(
    text="The second page says the launch moved to May.",
    url_context=url_context(
        {
            "https://broken.example/launch": "URL_RETRIEVAL_STATUS_ERROR",
            "https://news.example/launch": "URL_RETRIEVAL_STATUS_SUCCESS",
        }
    ),
)
SIGNATURE = "Q2lR3mVzcy1zaWduYXR1cmUtMQ=="
CODE = Reply(
    parts=code_parts(
        "Let me compute it.", "print(sum(range(1, 101)))\n", "5050\n", "The sum is **5050**.", SIGNATURE
    )
)
THOUGHTS = "I should recall the boiling point at sea level."
THINKING = Reply(text="Water boils at 100 °C at sea level.", thoughts=THOUGHTS, signature=SIGNATURE)


def unmarked(text: str) -> str:
    """``text`` without citation markers, emphasis markers (a preview may show a half-written one) and
    with its whitespace runs as single spaces."""
    return " ".join(MARKER.sub("", text).replace("*", "").split())


def redirect(slug: str) -> str:
    """The source link a case's chunk ``slug`` gets."""
    return REDIRECT + slug

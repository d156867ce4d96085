"""Grounded Gemini answers for the emulator, built in the documented wire format.

Field names and nesting follow the Gemini API reference (``GenerateContentResponse.candidates[]``:
``groundingMetadata {webSearchQueries, searchEntryPoint, groundingChunks[].web {uri, title},
groundingSupports[] {segment {startIndex, endIndex, text}, groundingChunkIndices, confidenceScores}}``,
``urlContextMetadata.urlMetadata[] {retrievedUrl, urlRetrievalStatus}``, ``Part.executableCode
{language, code}``, ``Part.codeExecutionResult {outcome, output}``, ``Part.thought``,
``Part.thoughtSignature``). Offsets are UTF-8 byte offsets into the answer text, as Gemini counts them;
chunk links are Google's redirect links (``vertexaisearch.cloud.google.com/grounding-api-redirect/...``)
titled with the site's domain, as Gemini sends them. No recorded response is copied here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"


def source(slug: str, domain: str) -> dict[str, Any]:
    """One ``groundingChunks`` entry: a redirect link titled with the site's domain."""
    return {"web": {"uri": REDIRECT + slug, "title": domain}}


def support(text: str, stretch: str, *chunks: int) -> dict[str, Any]:
    """The ``groundingSupports`` entry for ``stretch`` of ``text``: offsets in UTF-8 bytes."""
    encoded, wanted = text.encode(), stretch.encode()
    start = encoded.index(wanted)
    segment: dict[str, Any] = {"endIndex": start + len(wanted), "text": stretch}
    if start:  # proto3 JSON leaves a zero out
        segment["startIndex"] = start
    return {
        "segment": segment,
        "groundingChunkIndices": list(chunks),
        "confidenceScores": [0.9] * len(chunks),
    }


def grounding(
    text: str,
    queries: Sequence[str],
    sources: Sequence[dict[str, Any]],
    cited: Sequence[tuple[str, Sequence[int]]],
) -> dict[str, Any]:
    """A candidate's ``groundingMetadata`` for ``text``: each (stretch, chunk indices) in ``cited``."""
    return {
        "webSearchQueries": list(queries),
        "searchEntryPoint": {"renderedContent": "<style>.container{}</style><div class=container></div>"},
        "groundingChunks": list(sources),
        "groundingSupports": [support(text, stretch, *chunks) for stretch, chunks in cited],
    }


def url_context(statuses: dict[str, str]) -> dict[str, Any]:
    """``urlContextMetadata`` for ``{url: urlRetrievalStatus}``."""
    return {
        "urlMetadata": [
            {"retrievedUrl": url, "urlRetrievalStatus": status} for url, status in statuses.items()
        ]
    }


def code_parts(intro: str, code: str, output: str, outro: str, signature: str) -> list[dict[str, Any]]:
    """A code-executing answer: text, the code Gemini ran, its output, more text (the first part signed,
    as Gemini 3 signs the first part of a turn)."""
    return [
        {"text": intro, "thoughtSignature": signature},
        {"executableCode": {"language": "PYTHON", "code": code}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": output}},
        {"text": outro},
    ]

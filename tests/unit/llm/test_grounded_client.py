"""The client against the emulator: grounded, code-executing and thinking answers read whole, streamed
or not; the emulator refuses what Gemini refuses (a tool the model lacks, the wrong thinking field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import pytest

from bot.llm.gemini import GeminiClient
from bot.llm.types import ChatMessage, GenerationParams, LlmChunk, LlmRequest
from bot.sourcing import AnswerExtras
from tests.fakes.gemini import DEFAULT_MODELS, GeminiEmulator
from tests.fakes.grounded_cases import CODE, ENGLISH, THINKING, THOUGHTS

KEY = "grounded-key"
ASK = LlmRequest(
    contents=(ChatMessage("user", "hi"),),
    generation=GenerationParams(thinking_level="low", include_thoughts=True),
    tools=frozenset({"google_search", "url_context", "code_execution"}),
)


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiEmulator]:
    async with GeminiEmulator(api_key=KEY, models=(*DEFAULT_MODELS, "gemini-2.0-flash-lite")) as emulator:
        emulator.rejected_tools = {"gemini-2.0-flash-lite": {"googleSearch"}}
        yield emulator


@pytest.fixture
async def client(gemini: GeminiEmulator) -> AsyncIterator[GeminiClient]:
    async with GeminiClient(api_key=KEY, base_url=gemini.base_url, model="gemini-3-flash-preview") as c:
        yield c


async def answer(client: GeminiClient, stream: bool, model: str | None = None) -> tuple[str, AnswerExtras]:
    extras = AnswerExtras()
    if not stream:
        result = await client.generate(ASK, model=model)
        extras.add(LlmChunk(result.text, result.finish_reason, result.usage, result.extras))
        return result.text, extras
    text = ""
    async with aclosing(client.stream(ASK, model=model)) as chunks:
        async for chunk in chunks:
            extras.add(chunk)
            text += chunk.text
    return text, extras


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_grounded_answer_is_cited_alike_streamed_or_not(
    gemini: GeminiEmulator, client: GeminiClient, stream: bool
) -> None:
    gemini.script(ENGLISH.reply)
    text, extras = await answer(client, stream)
    sourced = extras.finish(text, "en", max_sources=5, show_thoughts=False)
    assert sourced.text.count("](https://vertexaisearch.cloud.google.com/") == 3
    assert sourced.sourcing is not None
    assert [s.title for s in sourced.sourcing.sources] == ["regjeringen.no", "ssb.no"]
    assert extras.tool_calls() == {"google_search": 2}
    assert extras.model_parts() is None  # plain text: the stored text says it all


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_code_and_thoughts_are_read_and_kept(
    gemini: GeminiEmulator, client: GeminiClient, stream: bool
) -> None:
    gemini.script(CODE)
    text, extras = await answer(client, stream)
    assert "```python\nprint(sum(range(1, 101)))\n```" in text
    assert extras.tool_calls() == {"code_execution": 1}
    assert extras.model_parts() == CODE.parts
    gemini.script(THINKING)
    text, extras = await answer(client, stream)
    assert text == "Water boils at 100 °C at sea level."
    sourced = extras.finish(text, "zh", max_sources=5, show_thoughts=True)
    assert sourced.sourcing is not None and sourced.sourcing.thoughts == THOUGHTS
    assert sourced.sourcing.thoughts_label == "思考过程"
    assert THOUGHTS not in str(extras.model_parts())


async def test_the_emulator_refuses_a_tool_the_model_lacks_and_both_thinking_fields(
    gemini: GeminiEmulator,
) -> None:
    async with httpx.AsyncClient(base_url=gemini.base_url, headers={"x-goog-api-key": KEY}) as http:
        contents = [{"role": "user", "parts": [{"text": "hi"}]}]
        refused = await http.post(
            "/v1beta/models/gemini-2.0-flash-lite:generateContent",
            json={"contents": contents, "tools": [{"google_search": {}}]},
        )
        assert refused.status_code == 400
        assert "Search Grounding is not supported" in refused.json()["error"]["message"]
        both = {"thinkingConfig": {"thinkingBudget": 512, "thinkingLevel": "LOW"}}
        refused = await http.post(
            "/v1beta/models/gemini-3-flash-preview:generateContent",
            json={"contents": contents, "generationConfig": both},
        )
        assert refused.status_code == 400
        level = {"thinkingConfig": {"thinkingLevel": "LOW"}}
        refused = await http.post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": contents, "generationConfig": level},
        )
        assert refused.status_code == 400


async def test_the_client_leaves_out_what_the_model_lacks(
    gemini: GeminiEmulator, client: GeminiClient
) -> None:
    text, _ = await answer(client, stream=False, model="gemini-2.0-flash-lite")
    assert text == "echo: hi"
    body = gemini.requests[-1].body
    assert "tools" not in body and "generationConfig" not in body

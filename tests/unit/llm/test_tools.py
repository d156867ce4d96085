"""Tools and thinking settings made valid for each model family."""

from __future__ import annotations

import pytest

from bot.llm.gemini import build_request_body
from bot.llm.tools import LEVEL_BUDGETS, model_warnings, thinking_config, tools_body
from bot.llm.types import ChatMessage, GenerationParams, LlmRequest

ALL = {"google_search", "url_context", "code_execution"}


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        ("gemini-2.5-flash", [{"googleSearch": {}}, {"urlContext": {}}, {"codeExecution": {}}]),
        ("gemini-3-flash-preview", [{"googleSearch": {}}, {"urlContext": {}}, {"codeExecution": {}}]),
        ("models/gemini-3.1-pro-preview", [{"googleSearch": {}}, {"urlContext": {}}, {"codeExecution": {}}]),
        ("gemini-2.0-flash", [{"googleSearch": {}}, {"codeExecution": {}}]),
        ("gemini-2.0-flash-lite", []),
        ("gemini-2.5-flash-image", []),
        ("gemma-3-27b-it", []),
    ],
)
def test_tools_a_model_takes(model: str, wire: list[dict[str, dict[str, object]]]) -> None:
    assert tools_body(model, ALL) == wire


def test_thinking_per_family() -> None:
    level = {"budget": None, "level": "low", "include_thoughts": True}
    assert thinking_config("gemini-3-flash-preview", **level) == {
        "thinkingLevel": "LOW",
        "includeThoughts": True,
    }
    assert thinking_config("gemini-2.5-flash", **level) == {
        "thinkingBudget": LEVEL_BUDGETS["low"],
        "includeThoughts": True,
    }
    assert thinking_config("gemini-2.0-flash", **level) is None
    budget = {"budget": 0, "level": None, "include_thoughts": False}
    assert thinking_config("gemini-2.5-flash", **budget) == {"thinkingBudget": 0}
    assert thinking_config("gemini-3.5-flash", **budget) == {"thinkingBudget": 0}
    assert thinking_config("gemini-2.5-pro", budget=None, level=None, include_thoughts=False) is None


def test_request_body_for_a_model_never_holds_both_thinking_fields() -> None:
    request = LlmRequest(
        contents=(ChatMessage("user", "hi"),),
        generation=GenerationParams(thinking_level="high", include_thoughts=True),
        tools=frozenset({"google_search"}),
    )
    body = build_request_body(request, "gemini-3-flash-preview")
    assert body["generationConfig"] == {"thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": True}}
    assert body["tools"] == [{"googleSearch": {}}]
    assert "tools" not in build_request_body(request, "gemini-2.0-flash-lite")


def test_warnings_name_each_model_and_what_it_lacks() -> None:
    lines = model_warnings(
        ["gemini-3-flash-preview", "gemini-2.0-flash", "gemini-2.0-flash"], ALL, thinking=True
    )
    assert lines == [
        "gemini-2.0-flash: does not support url_context; left out of its requests",
        "gemini-2.0-flash: does not think; thinking settings are left out of its requests",
    ]
    assert model_warnings(["gemini-2.5-flash"], ALL, thinking=True) == []

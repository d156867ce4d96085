"""Gemini's built-in tools and thinking settings, made valid for the model a request goes to.

Which model takes what is known from a small table of model families, not learned from 400s: a refused
tool would otherwise cost a failed call per message (and a retry each time) until someone noticed. The
table is checked once at start (:func:`model_warnings`) and applied to every request body
(:func:`tools_body`, :func:`thinking_config`), so a fallback model of another family gets a body valid
for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

GOOGLE_SEARCH: Final = "google_search"
URL_CONTEXT: Final = "url_context"
CODE_EXECUTION: Final = "code_execution"
TOOL_NAMES: Final = (GOOGLE_SEARCH, URL_CONTEXT, CODE_EXECUTION)
# The REST names (ProtoJSON accepts snake_case too; Google's SDKs send camelCase).
_WIRE: Final = {GOOGLE_SEARCH: "googleSearch", URL_CONTEXT: "urlContext", CODE_EXECUTION: "codeExecution"}
THINKING_LEVELS: Final = ("minimal", "low", "medium", "high")
# A level sent to a 2.5 model as a budget, so one config serves fallbacks of either family. Every value
# is within each 2.5 model's range (Flash-Lite's smallest budget when thinking is 512, Flash's largest
# 24576).
LEVEL_BUDGETS: Final = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class Family:
    """What one family of models accepts."""

    tools: frozenset[str]
    thinking: str | None  # "budget", "level" or None (a thinkingConfig is refused)


_ALL = frozenset(TOOL_NAMES)
_GEMINI_3 = Family(_ALL, "level")
_GEMINI_25 = Family(_ALL, "budget")
_GEMINI_20 = Family(frozenset({GOOGLE_SEARCH, CODE_EXECUTION}), None)
_GEMINI_20_LITE = Family(frozenset(), None)
# Gemma, image, speech and embedding models take none of the built-in tools.
_NO_TOOLS = Family(frozenset(), None)
_SPECIAL = re.compile(r"-(image|tts|live|embedding|native-audio)\b")


_UNKNOWN = Family(_ALL, "any")  # no model named: everything configured is sent as it is


def family(model: str | None) -> Family:
    """The family of ``model`` (a name like ``gemini-2.5-flash`` or ``models/gemini-3-pro-preview``)."""
    if model is None:
        return _UNKNOWN
    name = model.rsplit("/", 1)[-1].lower()
    match = _VERSION.match(name)
    if match is None or _SPECIAL.search(name):
        return _NO_TOOLS
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major >= 3:
        return _GEMINI_3
    if (major, minor) >= (2, 5):
        return _GEMINI_25
    if (major, minor) == (2, 0):
        return _GEMINI_20_LITE if "-lite" in name else _GEMINI_20
    return _NO_TOOLS


def tools_body(model: str | None, tools: Iterable[str]) -> list[dict[str, Any]]:
    """The request's ``tools`` list: each wanted tool ``model`` supports, in a fixed order."""
    wanted = set(tools) & family(model).tools
    return [{_WIRE[name]: {}} for name in TOOL_NAMES if name in wanted]


def thinking_config(
    model: str | None, *, budget: int | None, level: str | None, include_thoughts: bool
) -> dict[str, Any] | None:
    """``generationConfig.thinkingConfig`` for ``model``: Gemini 3 takes a level (or a budget), 2.5 a
    budget only (a level becomes its :data:`LEVEL_BUDGETS` budget); never both. None when nothing is to
    be sent or the model does not think."""
    kind = family(model).thinking
    config: dict[str, Any] = {}
    if kind in ("level", "any") and level is not None:
        config["thinkingLevel"] = level.upper()
    elif kind == "budget" and level is not None:
        config["thinkingBudget"] = LEVEL_BUDGETS[level]
    elif kind is not None and budget is not None:
        config["thinkingBudget"] = budget
    if kind is not None and include_thoughts:
        config["includeThoughts"] = True
    return config or None


def model_warnings(models: Iterable[str], tools: Iterable[str], *, thinking: bool) -> list[str]:
    """One line per configured setting a model will not get (logged once at start); ``thinking``: a
    thinking setting is configured."""
    wanted = [name for name in TOOL_NAMES if name in set(tools)]
    lines: list[str] = []
    for model in dict.fromkeys(models):
        kind = family(model)
        missing = [name for name in wanted if name not in kind.tools]
        if missing:
            lines.append(f"{model}: does not support {', '.join(missing)}; left out of its requests")
        if kind.thinking is None and thinking:
            lines.append(f"{model}: does not think; thinking settings are left out of its requests")
    return lines

"""Value types for one Gemini call: what we send and what comes back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["user", "model"]


@dataclass(frozen=True, slots=True)
class MediaPart:
    """A file in a request: its bytes sent inline, or the URI of its Files API copy (``file_uri``)."""

    mime_type: str
    size: int
    data: bytes = b""
    file_uri: str = ""

    def __repr__(self) -> str:  # never the bytes, wherever a request is logged
        where = self.file_uri or "inline"
        return f"MediaPart({self.mime_type}, {self.size} bytes, {where})"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation as Gemini sees it."""

    role: Role
    text: str
    attachments: tuple[MediaPart, ...] = ()
    # A model turn's parts as Gemini sent them (signatures, code execution), sent back instead of ``text``.
    parts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Generation settings; ``None`` leaves the field out so the model default applies."""

    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None
    include_thoughts: bool = False


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """Everything needed for one generateContent call, minus the model and endpoint."""

    contents: tuple[ChatMessage, ...]
    system_instruction: str | None = None
    generation: GenerationParams = GenerationParams()
    # Built-in Gemini tools by config name (bot.llm.tools.TOOL_NAMES); the config's, or a chat's choice.
    tools: frozenset[str] = frozenset()
    # The chat's chosen model, tried before the configured fallbacks; None = ``gemini.model``.
    model: str | None = None
    # The chat's switches for Google Search grounding and thought summaries; None = the config's default.
    search: bool | None = None
    show_thoughts: bool | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts from ``usageMetadata`` (missing fields are 0)."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ResponseExtras:
    """What a response carries beside its answer text (see bot.llm.parts).

    ``parts`` are the model parts to send back in later turns (no thought text); ``metadata`` holds the
    candidate's ``groundingMetadata``/``urlContextMetadata``; ``code_runs`` counts executed code parts.
    """

    thoughts: str = ""
    parts: tuple[Mapping[str, Any], ...] = ()
    metadata: Mapping[str, Any] | None = None
    code_runs: int = 0


@dataclass(frozen=True, slots=True)
class LlmChunk:
    """One streamed event: ``text`` is only the new text (thought parts excluded).

    ``usage`` is cumulative, so the last chunk's usage is the call's total; ``finish_reason`` is set only
    on the last chunk.
    """

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    extras: ResponseExtras | None = None


@dataclass(frozen=True, slots=True)
class LlmResult:
    """A complete, successful reply (``finish_reason`` is ``STOP`` or ``MAX_TOKENS``)."""

    text: str
    finish_reason: str
    usage: Usage
    model_version: str = ""
    response_id: str = ""
    extras: ResponseExtras | None = None

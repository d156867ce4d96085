"""Value types for one Gemini call: what we send and what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.domain import Attachment

Role = Literal["user", "model"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of the conversation as Gemini sees it."""

    role: Role
    text: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Generation settings; ``None`` leaves the field out so the model default applies."""

    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    thinking_budget: int | None = None


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """Everything needed for one generateContent call, minus the model and endpoint."""

    contents: tuple[ChatMessage, ...]
    system_instruction: str | None = None
    generation: GenerationParams = GenerationParams()
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
class LlmChunk:
    """One streamed event: ``text`` is only the new text (thought parts excluded).

    ``usage`` is cumulative, so the last chunk's usage is the call's total; ``finish_reason`` is set only
    on the last chunk.
    """

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class LlmResult:
    """A complete, successful reply (``finish_reason`` is ``STOP`` or ``MAX_TOKENS``)."""

    text: str
    finish_reason: str
    usage: Usage
    model_version: str = ""
    response_id: str = ""

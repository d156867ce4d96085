"""A conversation's own settings: model, persona (or a custom instruction), search and thought summaries.

A forum topic or a Slack thread has its own settings, each one it has not chosen falling back to its
chat's, then to the config. :func:`resolve` combines them; :func:`system_instruction` puts the operator's
instruction first and the persona's after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bot.config import Settings
from bot.store import ChatSettingsStore, StoredSettings

# ``persona`` values besides a preset's name: the custom instruction, or explicitly none (in a thread this
# overrides the chat's persona; ``None`` means "not chosen here").
CUSTOM = "custom"
OFF = ""
MAX_CUSTOM_CHARS = 2000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """What applies to a conversation: its choices over its chat's over the config."""

    model: str
    persona: str  # a preset's name, CUSTOM, or OFF
    custom_instruction: str | None
    persona_instruction: str | None  # the preset's or the custom text; None without a persona
    temperature: float | None  # the preset's; None = gemini.generation.temperature
    search: bool | None  # None = the config's default
    show_thoughts: bool | None


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)


def resolve(settings: Settings, chat: StoredSettings | None, thread: StoredSettings | None) -> ChatSettings:
    """The settings of a conversation from its own row (``thread``) and its chat's (``chat``).

    A stored model or persona that the config no longer offers is ignored (the operator removed it).
    """
    own, parent = thread or StoredSettings(), chat or StoredSettings()
    models = settings.chat_models
    model = _first(*(m for m in (own.model, parent.model) if m in models)) or settings.gemini.model
    persona, custom = OFF, None
    for row in (own, parent):
        if row.persona is not None and (row.persona in (OFF, CUSTOM) or row.persona in settings.personas):
            persona, custom = row.persona, row.custom_instruction
            break
    instruction: str | None = None
    temperature: float | None = None
    if persona == CUSTOM:
        instruction = custom or None
    elif persona != OFF:
        preset = settings.personas[persona]
        instruction, temperature = preset.system_instruction, preset.temperature
    return ChatSettings(
        model=model,
        persona=persona,
        custom_instruction=custom if persona == CUSTOM else None,
        persona_instruction=instruction,
        temperature=temperature,
        search=_first(own.search, parent.search),
        show_thoughts=_first(own.show_thoughts, parent.show_thoughts),
    )


def system_instruction(operator: str, chat: ChatSettings) -> str | None:
    """The operator's instruction first (it cannot be removed), then the chat's persona."""
    parts = [p for p in (operator.strip(), (chat.persona_instruction or "").strip()) if p]
    return "\n\n".join(parts) or None


class ChatSettingsBook:
    """Reads (one indexed query per message) and changes the conversations' settings.

    Not cached: another replica may have changed them, and the read is one primary-key lookup.
    """

    def __init__(self, store: ChatSettingsStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    async def get(self, platform: str, chat_key: str, thread_key: str) -> ChatSettings:
        """What applies to this conversation."""
        chat, thread = await self._store.read(platform, chat_key, thread_key)
        return resolve(self._settings, chat, thread)

    async def move_chat(self, platform: str, old_chat_key: str, new_chat_key: str) -> None:
        """A chat got a new id: its settings follow it."""
        await self._store.move_chat(platform, old_chat_key, new_chat_key)

    async def change(
        self, platform: str, chat_key: str, thread_key: str, now: datetime, **changes: object
    ) -> None:
        """Set this conversation key's own choices (column names of ``chat_settings``)."""
        await self._store.update(platform, chat_key, thread_key, now, changes)

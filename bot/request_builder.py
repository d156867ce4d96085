"""The Gemini request for one message: its conversation's history (with the files kept with it), the chat's
model, persona and switches over the config, the running summary, tools and thinking."""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat_settings import ChatSettings, ChatSettingsBook, system_instruction
from bot.clock import Clock
from bot.config import Settings
from bot.context import PastExchange, build_contents, with_context
from bot.domain import Incoming
from bot.i18n import Language
from bot.llm.tools import GOOGLE_SEARCH
from bot.llm.types import GenerationParams, LlmRequest
from bot.media.keeper import MediaKeeper
from bot.media.prepare import InlineBudget, PreparedMedia
from bot.memory import ConversationMemory, summary_instruction
from bot.store import Conversations, Exchange


class RequestBuilder:
    """Builds each message's :class:`LlmRequest` from the config, the chat's settings and the store."""

    def __init__(
        self,
        settings: Settings,
        conversations: Conversations,
        clock: Clock,
        media: MediaKeeper,
        *,
        chat_settings: ChatSettingsBook | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self._settings = settings
        self._conversations = conversations
        self._clock = clock
        self._media = media
        self._chat_settings = chat_settings
        self._memory = memory

    async def build(
        self,
        message: Incoming,
        sent_text: str,
        conversation_id: int | None,
        *,
        media: PreparedMedia,
        budget: InlineBudget,
        lang: Language,
    ) -> LlmRequest:
        """The request: the chat's model, persona and switches over the config; the running summary of what
        left the window in the system instruction, and those exchanges not sent again. Without a
        conversation (an answer kept out of history) only the message itself is sent."""
        settings = self._settings
        history = await self._history(conversation_id)
        chat = await self._chat(message)
        instruction = system_instruction(settings.gemini.system_instruction, chat)
        summary = None
        if self._memory is not None and conversation_id is not None:
            summary = await self._memory.summary(conversation_id)
        if summary is not None:
            history = [h for h in history if h.created_at > summary.last]
            instruction = "\n\n".join(p for p in (instruction, summary_instruction(summary.text)) if p)
        tools = set(settings.gemini.tools.enabled())
        if chat.search is not None:
            (tools.add if chat.search else tools.discard)(GOOGLE_SEARCH)
        resent = self._media.resent(history, budget, lang)
        return LlmRequest(
            contents=build_contents(
                [
                    PastExchange(_noted(h.user_text, note), h.model_text, h.model_parts, parts)
                    for h, (parts, note) in zip(history, resent, strict=True)
                ],
                with_context(message.context_text, sent_text),
                max_turns=settings.conversation.max_turns,
                max_chars=settings.conversation.max_context_chars,
                system_chars=len(instruction or ""),
                attachments=media.parts,
            ),
            system_instruction=instruction or None,
            model=chat.model if chat.model != settings.gemini.model else None,
            search=chat.search,
            show_thoughts=chat.show_thoughts,
            generation=self._generation(chat),
            tools=frozenset(tools),
        )

    async def _history(self, conversation_id: int | None) -> Sequence[Exchange]:
        if conversation_id is None:
            return ()
        settings = self._settings
        return await self._conversations.history(
            conversation_id,
            limit=settings.conversation.max_turns,
            since=self._clock.now() - settings.storage.retention,
            with_media=self._media.keeps,
        )

    async def _chat(self, message: Incoming) -> ChatSettings:
        if self._chat_settings is None:
            return ChatSettings(self._settings.gemini.model, "", None, None, None, None, None)
        return await self._chat_settings.get(message.platform.value, message.chat_key, message.thread_key)

    def _generation(self, chat: ChatSettings) -> GenerationParams:
        gen = self._settings.gemini.generation
        return GenerationParams(
            temperature=chat.temperature if chat.temperature is not None else gen.temperature,
            top_p=gen.top_p,
            max_output_tokens=gen.max_output_tokens,
            thinking_budget=gen.thinking_budget,
            thinking_level=gen.thinking_level,
            include_thoughts=gen.show_thoughts if chat.show_thoughts is None else chat.show_thoughts,
        )


def _noted(user_text: str, note: str) -> str:
    """An earlier user text with the note on its files that are no longer available."""
    return f"{user_text} {note}".strip() if note else user_text

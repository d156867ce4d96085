"""The models' Core tables, for the queries (Core statements, no ORM identity map)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Table

from bot.store.models import (
    AnswerMessage,
    AuditRow,
    BlockedUser,
    ChatSetting,
    Conversation,
    Inbox,
    LlmCall,
    MediaDeletion,
    MediaItem,
    QuotaCounter,
    Turn,
    User,
    UserUsage,
    Vote,
)

__all__ = [
    "answer_messages",
    "audit",
    "blocked_users",
    "chat_settings",
    "conversations",
    "inbox",
    "llm_calls",
    "media",
    "media_deletions",
    "quota_counters",
    "turns",
    "user_usage",
    "users",
    "votes",
]

conversations: Final[Table] = Conversation.__table__  # type: ignore[assignment]
turns: Final[Table] = Turn.__table__  # type: ignore[assignment]
inbox: Final[Table] = Inbox.__table__  # type: ignore[assignment]
llm_calls: Final[Table] = LlmCall.__table__  # type: ignore[assignment]
users: Final[Table] = User.__table__  # type: ignore[assignment]
audit: Final[Table] = AuditRow.__table__  # type: ignore[assignment]
quota_counters: Final[Table] = QuotaCounter.__table__  # type: ignore[assignment]
blocked_users: Final[Table] = BlockedUser.__table__  # type: ignore[assignment]
chat_settings: Final[Table] = ChatSetting.__table__  # type: ignore[assignment]
user_usage: Final[Table] = UserUsage.__table__  # type: ignore[assignment]
answer_messages: Final[Table] = AnswerMessage.__table__  # type: ignore[assignment]
votes: Final[Table] = Vote.__table__  # type: ignore[assignment]
media: Final[Table] = MediaItem.__table__  # type: ignore[assignment]
media_deletions: Final[Table] = MediaDeletion.__table__  # type: ignore[assignment]

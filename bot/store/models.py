"""Tables of gembot's database (SQLAlchemy 2 typed declarative).

Alembic owns the schema: ``migrations/versions`` must create exactly what is declared here (a test
compares the two). Only ``turns`` holds conversation text (and ``media`` the files sent with it); every
other table stores ids, counters and metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AnswerMessage",
    "AuditRow",
    "Base",
    "BlockedUser",
    "ChatSetting",
    "Conversation",
    "Inbox",
    "LlmCall",
    "MediaDeletion",
    "MediaItem",
    "QuotaCounter",
    "Turn",
    "User",
    "UserUsage",
    "UtcDateTime",
    "Vote",
]

# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the autoincrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Explicit constraint names keep Alembic migrations and compare_metadata stable across dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC
    (which also keeps its text comparison chronological) and come back tagged as UTC. Naive datetimes
    are refused: guessing their zone is how timestamps silently drift.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: gembot stores timezone-aware UTC datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding gembot's metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    """One conversation: a platform chat, or a thread inside it."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("platform", "chat_key", "thread_key"),
        Index(None, "last_active_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_key: Mapped[str] = mapped_column(String(255))
    thread_key: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_active_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The running summary of the exchanges that left the window (conversation.summarize), text like
    # turns: from the oldest to the newest exchange folded into it.
    summary: Mapped[str | None] = mapped_column(Text)
    summary_from: Mapped[datetime | None] = mapped_column(UtcDateTime())
    summary_through: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Turn(Base):
    """One finished exchange: the user's message and the model's reply."""

    __tablename__ = "turns"
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "conversation_id", "created_at"),
        Index(None, "user_id"),  # /forget finds a user's turns without scanning the table
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(255))
    user_text: Mapped[str] = mapped_column(Text)
    model_text: Mapped[str] = mapped_column(Text)
    # JSON list of the model parts sent back in later turns (bot.llm.parts); null: model_text says it all.
    model_parts: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Inbox(Base):
    """One received platform event, for deduplication and crash recovery (no message text)."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        Index(None, "received_at"),
        Index(None, "platform", "user_id"),  # /forget
        Index(None, "status", "received_at"),  # unanswered rows after a crash
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    user_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Where to answer after a crash (no text): chat, thread, the platform's reply ids as JSON, language.
    chat_key: Mapped[str | None] = mapped_column(String(255))
    thread_key: Mapped[str | None] = mapped_column(String(255))
    reply_to: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))


class LlmCall(Base):
    """One HTTP attempt against Gemini (no text)."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    platform: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    model: Mapped[str] = mapped_column(String(128))
    endpoint: Mapped[str] = mapped_column(String(512))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    gemini_status: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)


class User(Base):
    """A platform user the bot has seen (ids only, no display names)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("platform", "user_id"),
        Index(None, "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    forgotten_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    unreachable_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditRow(Base):
    """One audited action (parameters already redacted by the caller, as JSON text)."""

    __tablename__ = "audit"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    platform: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(64))


class QuotaCounter(Base):
    """Gemini requests counted in one quota window ('minute' | 'day' | 'month')."""

    __tablename__ = "quota_counters"

    window: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class BlockedUser(Base):
    """A user an admin blocked (from the admin page): every replica refuses their messages."""

    __tablename__ = "blocked_users"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    blocked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Who blocked them: the admin page's session id (never the sign-in token).
    blocked_by: Mapped[str] = mapped_column(String(255))


class ChatSetting(Base):
    """A conversation's own settings (``thread_key`` "" = the whole chat); ``None`` = not chosen."""

    __tablename__ = "chat_settings"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    chat_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    thread_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(128))
    persona: Mapped[str | None] = mapped_column(String(64))
    # A custom system prompt set with /persona custom (at most 2,000 characters, through the word filter).
    custom_instruction: Mapped[str | None] = mapped_column(Text)
    search: Mapped[bool | None] = mapped_column(Boolean)
    show_thoughts: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserUsage(Base):
    """A user's Gemini use in one UTC hour: budgets, /usage and /stats sum the hours of their window."""

    __tablename__ = "user_usage"
    __table_args__ = (Index(None, "hour_start"),)

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # As the platform last gave it, for the admins' /stats only.
    display_name: Mapped[str] = mapped_column(String(128), default="")


class AnswerMessage(Base):
    """A platform message that shows an answer, and the inbox row of the message it answers (no text).

    A vote on the message (a Slack feedback button, a Telegram reaction) finds its answer through it.
    """

    __tablename__ = "answer_messages"
    __table_args__ = (
        UniqueConstraint("platform", "chat_key", "message_id"),
        Index(None, "inbox_id"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(255))
    inbox_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Vote(Base):
    """One user's vote on one answer ('up' or 'down'), changeable; gone when withdrawn."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("inbox_id", "user_id"),
        Index(None, "platform", "user_id"),  # /forget
        Index(None, "voted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbox_id: Mapped[int] = mapped_column(BigId)
    platform: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(8))
    voted_at: Mapped[datetime] = mapped_column(UtcDateTime())


class MediaItem(Base):
    """A file sent with an exchange, kept for the conversation's later turns: its bytes (a small file,
    sent inline again) or its Files API copy (``file_name`` ``files/…``, ``file_uri``, ``expires_at``).
    Goes with its turn (bot.store.media.erase_turns)."""

    __tablename__ = "media"
    __table_args__ = (Index(None, "turn_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(BigId, ForeignKey("turns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_uri: Mapped[str | None] = mapped_column(String(1024))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class MediaDeletion(Base):
    """A Files API copy to delete (its exchange was erased, or it was never kept): tried until it is gone,
    across restarts."""

    __tablename__ = "media_deletions"
    __table_args__ = (Index(None, "next_try_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(String(255))
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UtcDateTime())

"""Initial schema: conversations, turns, inbox, llm_calls, users, audit, quota_counters.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Self-contained on purpose (no import of bot.store.models): a migration must keep describing the schema
of its revision after the models move on. Timestamps are ``timestamptz`` on PostgreSQL; on SQLite they
hold naive UTC text (see ``bot.store.models.UtcDateTime``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "conversations",
        _id(),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_key", sa.String(length=255), nullable=False),
        sa.Column("thread_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_active_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.UniqueConstraint(
            "platform", "chat_key", "thread_key", name="uq_conversations_platform_chat_key_thread_key"
        ),
    )
    op.create_index("ix_conversations_last_active_at", "conversations", ["last_active_at"])

    op.create_table(
        "turns",
        _id(),
        sa.Column("conversation_id", _bigint(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("user_text", sa.Text(), nullable=False),
        sa.Column("model_text", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_turns_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
    )
    op.create_index("ix_turns_created_at", "turns", ["created_at"])
    op.create_index("ix_turns_conversation_id_created_at", "turns", ["conversation_id", "created_at"])
    op.create_index("ix_turns_user_id", "turns", ["user_id"])

    op.create_table(
        "inbox",
        _id(),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("conversation_id", _bigint(), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("answered_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sa.UniqueConstraint("platform", "event_id", name="uq_inbox_platform_event_id"),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    op.create_index("ix_inbox_platform_user_id", "inbox", ["platform", "user_id"])

    op.create_table(
        "llm_calls",
        _id(),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", _bigint(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=512), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("gemini_status", sa.String(length=64), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_at", "llm_calls", ["at"])

    op.create_table(
        "users",
        _id(),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("first_seen_at", _ts(), nullable=False),
        sa.Column("last_seen_at", _ts(), nullable=False),
        sa.Column("forgotten_at", _ts(), nullable=True),
        sa.Column("unreachable_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("platform", "user_id", name="uq_users_platform_user_id"),
    )
    op.create_index("ix_users_last_seen_at", "users", ["last_seen_at"])

    op.create_table(
        "audit",
        _id(),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_at", "audit", ["at"])

    op.create_table(
        "quota_counters",
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("window", "window_start", name="pk_quota_counters"),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in ("quota_counters", "audit", "users", "llm_calls", "inbox", "turns", "conversations"):
        op.drop_table(table)

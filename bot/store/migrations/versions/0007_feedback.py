"""Feedback on answers: which platform messages show each answer, and the users' votes on them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

No text: ``answer_messages`` maps a platform message id to the inbox row of the message it answers;
``votes`` holds one 'up' or 'down' per user and answer. Self-contained, as every migration (no import of
bot.store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``answer_messages`` and ``votes``."""
    op.create_table(
        "answer_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_key", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("inbox_id", _ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_answer_messages"),
        sa.UniqueConstraint(
            "platform", "chat_key", "message_id", name="uq_answer_messages_platform_chat_key_message_id"
        ),
    )
    op.create_index("ix_answer_messages_inbox_id", "answer_messages", ["inbox_id"])
    op.create_index("ix_answer_messages_created_at", "answer_messages", ["created_at"])
    op.create_table(
        "votes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("inbox_id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=8), nullable=False),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_votes"),
        sa.UniqueConstraint("inbox_id", "user_id", name="uq_votes_inbox_id_user_id"),
    )
    op.create_index("ix_votes_platform_user_id", "votes", ["platform", "user_id"])
    op.create_index("ix_votes_voted_at", "votes", ["voted_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_votes_voted_at", table_name="votes")
    op.drop_index("ix_votes_platform_user_id", table_name="votes")
    op.drop_table("votes")
    op.drop_index("ix_answer_messages_created_at", table_name="answer_messages")
    op.drop_index("ix_answer_messages_inbox_id", table_name="answer_messages")
    op.drop_table("answer_messages")

"""Each chat its own settings (model, persona, switches), each user's Gemini use per hour, and the
conversations' running summaries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Text: ``chat_settings.custom_instruction`` (a system prompt set with /persona) and
``conversations.summary`` (of exchanges that left the window; kept like turns).
``user_usage`` holds counts and the display name the platform gave, for the admins' /stats.
Self-contained, as every migration (no import of bot.store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``chat_settings`` and ``user_usage``; add the summary columns to ``conversations``."""
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("summary", sa.Text(), nullable=True))
        batch.add_column(sa.Column("summary_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("summary_through", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "chat_settings",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_key", sa.String(length=255), nullable=False),
        sa.Column("thread_key", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("persona", sa.String(length=64), nullable=True),
        sa.Column("custom_instruction", sa.Text(), nullable=True),
        sa.Column("search", sa.Boolean(), nullable=True),
        sa.Column("show_thoughts", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "chat_key", "thread_key", name="pk_chat_settings"),
    )
    op.create_table(
        "user_usage",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("platform", "user_id", "hour_start", name="pk_user_usage"),
    )
    op.create_index("ix_user_usage_hour_start", "user_usage", ["hour_start"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_user_usage_hour_start", table_name="user_usage")
    op.drop_table("user_usage")
    op.drop_table("chat_settings")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("summary_through")
        batch.drop_column("summary_from")
        batch.drop_column("summary")

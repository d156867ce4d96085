"""Inbox rows keep where to answer, so a message left unanswered by a crash can be followed up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Still no message text: only the chat, thread, the platform ids needed to reply and the language.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the reply target columns and an index for finding unanswered rows."""
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("chat_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("thread_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("reply_to", sa.Text(), nullable=True))
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    op.create_index("ix_inbox_status_received_at", "inbox", ["status", "received_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_inbox_status_received_at", table_name="inbox")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("language")
        batch.drop_column("reply_to")
        batch.drop_column("thread_key")
        batch.drop_column("chat_key")

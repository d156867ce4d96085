"""Files sent with exchanges, kept for later turns, and the Files API copies still to delete.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``media`` holds a small file's bytes or a reference to its Files API copy, one row per file of a turn
(deleted with it); ``media_deletions`` the remote copies to delete, retried until they are gone.
Self-contained, as every migration (no import of bot.store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``media`` and ``media_deletions``."""
    op.create_table(
        "media",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("turn_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("file_uri", sa.String(length=1024), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_media_turn_id_turns", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
    )
    op.create_index("ix_media_turn_id", "media", ["turn_id"])
    op.create_table(
        "media_deletions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media_deletions"),
    )
    op.create_index("ix_media_deletions_next_try_at", "media_deletions", ["next_try_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_media_deletions_next_try_at", table_name="media_deletions")
    op.drop_table("media_deletions")
    op.drop_index("ix_media_turn_id", table_name="media")
    op.drop_table("media")

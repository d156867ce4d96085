"""Blocked users: the admin page blocks a user on every replica.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Ids only, no names or text: the platform, its user id, when and by which admin session.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``blocked_users``."""
    op.create_table(
        "blocked_users",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("platform", "user_id", name="pk_blocked_users"),
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("blocked_users")

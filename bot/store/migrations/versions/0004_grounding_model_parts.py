"""Exchanges keep the model parts Gemini needs back in later turns (thought signatures, code runs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

JSON text, null when the reply's plain text says the same. Never thought text: only what the user saw
plus opaque signatures and the code Gemini ran with its output. Deleted with its row (retention, /forget,
/reset).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add turns.model_parts."""
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("model_parts", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("model_parts")

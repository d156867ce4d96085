"""Bring the database schema to Alembic's head, programmatically.

Safe to call on every start and from several processes at once: the whole upgrade runs in one
transaction that first takes the database's write lock (``BEGIN IMMEDIATE`` on SQLite, waiting up to
``busy_timeout``; a transaction-scoped advisory lock on PostgreSQL), so a second caller waits, then
finds the schema at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.store.db import create_engine

__all__ = ["alembic_config", "upgrade_to_head"]

_HERE: Final = Path(__file__).resolve().parent
_PG_MIGRATION_LOCK: Final = 0x67656D626F74  # "gembot"


def alembic_config() -> Config:
    """Alembic's config for gembot's migrations, independent of the current directory."""
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    return config


async def upgrade_to_head(url: str) -> None:
    """Run ``alembic upgrade head`` against ``url``."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")

"""Persistence: SQLAlchemy 2 async on SQLite (default) or PostgreSQL, schema owned by Alembic."""

from bot.store.db import create_engine, read_only
from bot.store.migrate import upgrade_to_head
from bot.store.repo import (
    ActivityCounts,
    AuditRecord,
    CallRecord,
    Exchange,
    LatencyBucket,
    Store,
    Unanswered,
    UserUsage,
)

__all__ = [
    "ActivityCounts",
    "AuditRecord",
    "CallRecord",
    "Exchange",
    "LatencyBucket",
    "Store",
    "Unanswered",
    "UserUsage",
    "create_engine",
    "read_only",
    "upgrade_to_head",
]

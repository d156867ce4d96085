"""Persistence: SQLAlchemy 2 async on SQLite (default) or PostgreSQL, schema owned by Alembic."""

from bot.store.db import create_engine, read_only
from bot.store.migrate import upgrade_to_head
from bot.store.repo import ActivityCounts, AnswerStart, AuditRecord, CallRecord, Exchange, Store, Unanswered

__all__ = [
    "ActivityCounts",
    "AnswerStart",
    "AuditRecord",
    "CallRecord",
    "Exchange",
    "Store",
    "Unanswered",
    "create_engine",
    "read_only",
    "upgrade_to_head",
]

"""Persistence: SQLAlchemy 2 async on SQLite (default) or PostgreSQL, schema owned by Alembic."""

from bot.store.blocks import BlockedUsers
from bot.store.conversations import Conversations, Exchange
from bot.store.database import Database
from bot.store.db import create_engine, read_only
from bot.store.feedback import Feedback, Satisfaction
from bot.store.inbox import AnswerStart, EventInbox, Unanswered
from bot.store.migrate import upgrade_to_head
from bot.store.quota import QuotaCounters
from bot.store.records import AuditRecord, CallRecord, Records
from bot.store.retention import Retention
from bot.store.settings import ChatSettingsStore, StoredSettings
from bot.store.stats import ActivityCounts, LatencyBucket, Statistics, UserActivity
from bot.store.store import Store
from bot.store.summaries import StoredSummary, Summaries
from bot.store.usage import TopUser, UsageCounters, UsageTotals
from bot.store.users import Users

__all__ = [
    "ActivityCounts",
    "AnswerStart",
    "AuditRecord",
    "BlockedUsers",
    "CallRecord",
    "ChatSettingsStore",
    "Conversations",
    "Database",
    "EventInbox",
    "Exchange",
    "Feedback",
    "LatencyBucket",
    "QuotaCounters",
    "Records",
    "Retention",
    "Satisfaction",
    "Statistics",
    "Store",
    "StoredSettings",
    "StoredSummary",
    "Summaries",
    "TopUser",
    "Unanswered",
    "UsageCounters",
    "UsageTotals",
    "UserActivity",
    "Users",
    "create_engine",
    "read_only",
    "upgrade_to_head",
]

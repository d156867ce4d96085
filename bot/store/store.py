"""The store: one :class:`Database` and its parts, one per concern, built once by the composition root.

Each consumer is handed the parts it uses (the engine its inbox, conversations and records; the quota
guard its counters; /stats its statistics ...) and sees nothing else of the database.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.blocks import BlockedUsers
from bot.store.conversations import Conversations
from bot.store.database import Database
from bot.store.db import create_engine
from bot.store.feedback import Feedback
from bot.store.inbox import EventInbox
from bot.store.media import MediaStore
from bot.store.quota import QuotaCounters
from bot.store.records import Records
from bot.store.retention import Retention
from bot.store.settings import ChatSettingsStore
from bot.store.stats import Statistics
from bot.store.summaries import Summaries
from bot.store.usage import UsageCounters
from bot.store.users import Users

__all__ = ["Store"]


class Store:
    """Every part of gembot's database access, over one shared :class:`Database`."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use ``engine`` (shared; the caller or :meth:`close` disposes of it)."""
        self.database = Database(engine)
        self.inbox = EventInbox(self.database)
        self.conversations = Conversations(self.database)
        self.records = Records(self.database)
        self.users = Users(self.database)
        self.retention = Retention(self.database)
        self.quota = QuotaCounters(self.database)
        self.statistics = Statistics(self.database)
        self.blocks = BlockedUsers(self.database)
        self.chat_settings = ChatSettingsStore(self.database)
        self.usage = UsageCounters(self.database)
        self.summaries = Summaries(self.database)
        self.feedback = Feedback(self.database)
        self.media = MediaStore(self.database)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Create an engine for ``url`` (the schema is not migrated here)."""
        return cls(create_engine(url))

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine."""
        return self.database.engine

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        await self.database.close()

"""The parts of gembot built from the settings: store, Gemini client, guards, engine and their jobs.

What runs them (the HTTP server, the adapters, the console) is wired in :mod:`bot.service`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from bot.alerts import AlertHub
from bot.chat_commands import ChatCommands
from bot.chat_settings import ChatSettingsBook
from bot.clock import Clock, SystemClock
from bot.commands import Commands
from bot.config import GeminiSettings, Settings
from bot.engine import Engine, longest_answer
from bot.guards.access import AccessPolicy
from bot.guards.blocklist import BlockList
from bot.guards.budgets import BudgetGuard
from bot.guards.limits import RateLimiter
from bot.guards.quota import QuotaGuard
from bot.guards.wordfilter import WordFilter
from bot.llm.files import FilesApi
from bot.llm.gemini import GeminiClient, GeminiTimeouts
from bot.llm.policy import AnswerPolicy
from bot.llm.tools import model_warnings
from bot.media.janitor import MediaJanitor
from bot.media.keeper import MediaKeeper
from bot.memory import ConversationMemory
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.sequencer import LocalSequencer, PostgresSequencer, Sequencer
from bot.store import Store
from bot.store.migrate import upgrade_to_head
from bot.votes import Votes

log = get_logger(__name__)

# How long a purge waits for the Files API copies of what it erased to be deleted.
_PURGE_SWEEP_SECONDS = 30.0


@dataclass
class App:
    """Every long-lived part of a running gembot, built once from the settings."""

    settings: Settings
    clock: Clock
    store: Store
    client: GeminiClient
    metrics: Metrics
    engine: Engine
    limiter: RateLimiter | None
    alerts: AlertHub
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    text_filter: WordFilter | None = None
    started_at: datetime | None = None
    quota: QuotaGuard | None = None
    blocklist: BlockList | None = None
    janitor: MediaJanitor | None = None

    @classmethod
    async def create(cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> App:
        """Migrate the database and build the parts (nothing is listening yet)."""
        clock = clock or SystemClock()
        if migrate:
            await upgrade_to_head(settings.storage.url)
        store = await Store.open(settings.storage.url)
        gemini = settings.gemini
        client = gemini_client(gemini)
        warn_unsupported_settings(gemini)
        metrics = Metrics()
        limiter = RateLimiter(settings.rate_limits, key_prefix=settings.rate_limits.key_prefix)
        text_filter = WordFilter(settings.filter)
        alerts = AlertHub(clock, interval=gemini.admin_alert_interval.total_seconds())
        quota = QuotaGuard(store.quota, gemini.quota, clock, metrics)
        policy = AnswerPolicy(
            client, gemini, clock, quota=quota, alerts=alerts, language=settings.conversation.language
        )
        sequencer = conversation_sequencer(settings, store)
        memory, book, budgets, chat_commands = chat_parts(settings, store, policy, clock, text_filter)
        commands = store_commands(settings, store, clock, chat_commands)
        blocklist = BlockList(store.blocks, clock)
        files, janitor, media = media_parts(settings, store, clock, metrics)
        engine = Engine(
            settings=settings,
            inbox=store.inbox,
            conversations=store.conversations,
            records=store.records,
            commands=commands,
            policy=policy,
            clock=clock,
            metrics=metrics,
            access=AccessPolicy(settings),
            limiter=limiter,
            text_filter=text_filter,
            sequencer=sequencer,
            blocklist=blocklist,
            chat_settings=book,
            budgets=budgets,
            memory=memory,
            votes=Votes(store.feedback, clock, metrics),
            media=media,
        )
        app = cls(settings, clock, store, client, metrics, engine, limiter, alerts)
        app._closers += [client.aclose, files.aclose, store.close, sequencer.aclose, alerts.aclose]
        app.janitor = janitor
        app.started_at = clock.now()
        app.text_filter = text_filter
        app.quota = quota
        app.blocklist = blocklist
        text_filter.start_watching(settings.filter.reload_interval.total_seconds(), clock.sleep)
        app._closers += [limiter.aclose, text_filter.aclose]
        if memory is not None:
            app._closers.append(memory.aclose)  # closed first: folds in progress use the client and store
        return app

    async def rate_limit_storage_problem(self) -> str | None:
        """For /readyz: None while the rate limits' storage (memory or Redis) answers."""
        if self.limiter is None or await self.limiter.check_storage():
            return None
        return f"{self.settings.rate_limits.storage.split(':', 1)[0]} storage does not answer"

    async def refresh_quota_gauges(self) -> None:
        """Read the current quota windows into ``gembot_quota_used`` (before /metrics renders)."""
        if self.quota is not None:
            await self.quota.used()

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Delete what the retention policy says must go, and the Files API copies of the files erased
        (those that fail now are tried again by the janitor)."""
        now = now or self.clock.now()
        storage = self.settings.storage
        removed = await self.store.retention.purge(
            turns_before=now - storage.retention,
            # Inbox rows hold no text: they stay for /stats' message counts; where to reply goes sooner.
            inbox_before=now - storage.stats_retention,
            inbox_targets_before=now - storage.retention,
            audit_before=now - storage.audit_retention,
            calls_before=now - storage.stats_retention,
        )
        removed["media_files"] = await self._sweep_media()
        return removed

    async def _sweep_media(self) -> int:
        """Delete the queued Files API copies now, for a while: what is left, the janitor deletes later."""
        if self.janitor is None:
            return 0
        try:
            async with asyncio.timeout(_PURGE_SWEEP_SECONDS):
                return await self.janitor.sweep()
        except TimeoutError:
            log.warning("retention.media_sweep_unfinished")
            return 0

    def background_jobs(self) -> dict[str, Coroutine[None, None, None]]:
        """The jobs a running service keeps going, by name: retention, and the janitor deleting the
        Files API copies of erased files."""
        jobs = {"retention": self.purge_forever()}
        if self.janitor is not None:
            jobs["media-janitor"] = self.janitor.run_forever()
        return jobs

    async def purge_forever(self) -> None:
        """The retention job: purge now and then every ``storage.purge_interval``."""
        interval = self.settings.storage.purge_interval.total_seconds()
        while True:
            try:
                removed = await self.purge()
                if any(removed.values()):
                    log.info("retention.purged", **removed)
            except Exception:
                log.exception("retention.purge_failed")
            await self.clock.sleep(interval)

    async def aclose(self) -> None:
        """Close every resource, newest first."""
        while self._closers:
            closer = self._closers.pop()
            try:
                await closer()
            except Exception:
                log.exception("app.close_failed")

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def chat_parts(
    settings: Settings, store: Store, policy: AnswerPolicy, clock: Clock, text_filter: WordFilter
) -> tuple[ConversationMemory | None, ChatSettingsBook, BudgetGuard, ChatCommands]:
    """Each chat's own settings, the per-user budgets, the commands that show and change them, and the
    summarised memory when ``conversation.summarize`` is on."""
    memory = (
        ConversationMemory(
            settings=settings, summaries=store.summaries, records=store.records, policy=policy, clock=clock
        )
        if settings.conversation.summarize
        else None
    )
    book = ChatSettingsBook(store.chat_settings, settings)
    budgets = BudgetGuard(store.usage, settings.budgets, clock)
    chat_commands = ChatCommands(
        settings=settings, book=book, budgets=budgets, records=store.records, text_filter=text_filter
    )
    return memory, book, budgets, chat_commands


def store_commands(settings: Settings, store: Store, clock: Clock, chat_commands: ChatCommands) -> Commands:
    """The chat commands over the store's parts."""
    return Commands(
        settings=settings,
        conversations=store.conversations,
        users=store.users,
        records=store.records,
        statistics=store.statistics,
        quota=store.quota,
        clock=clock,
        chat_commands=chat_commands,
        usage=store.usage,
        feedback=store.feedback,
    )


def media_parts(
    settings: Settings, store: Store, clock: Clock, metrics: Metrics
) -> tuple[FilesApi, MediaJanitor, MediaKeeper]:
    """The Files API client for the ``gemini:`` section's key and endpoint, the janitor deleting the
    copies of erased files, and the media side of answers."""
    gemini = settings.gemini
    api_key = gemini.api_key.get_secret_value() if gemini.api_key is not None else ""
    files = FilesApi(api_key=api_key, base_url=gemini.base_url, timeout=gemini.timeout.total_seconds() * 2)
    janitor = MediaJanitor(store.media, files, clock, metrics)
    keeper = MediaKeeper(
        settings.media,
        clock,
        metrics,
        files=files,
        store=store.media,
        janitor=janitor,
        upload_grace=longest_answer(settings),
    )
    return files, janitor, keeper


def conversation_sequencer(settings: Settings, store: Store) -> Sequencer:
    """Per-conversation order: PostgreSQL advisory locks across replicas, in-process on SQLite."""
    if store.engine.dialect.name == "postgresql":
        return PostgresSequencer(settings.storage.url, waiters=settings.storage.lock_connections)
    return LocalSequencer()


def warn_unsupported_settings(gemini: GeminiSettings) -> None:
    """One warning at start per model that will not get a configured tool or thinking setting."""
    for problem in model_warnings(
        [gemini.model, *gemini.fallback_models],
        gemini.tools.enabled(),
        thinking=gemini.generation.thinking_level is not None
        or gemini.generation.thinking_budget is not None
        or gemini.generation.show_thoughts,
    ):
        log.warning("gemini.setting_not_supported", detail=problem)


def gemini_client(gemini: GeminiSettings) -> GeminiClient:
    """The Gemini REST client the ``gemini:`` section describes."""
    api_key = gemini.api_key.get_secret_value() if gemini.api_key is not None else ""
    return GeminiClient(
        api_key=api_key,
        base_url=gemini.base_url,
        model=gemini.model,
        timeouts=GeminiTimeouts(
            connect=gemini.connect_timeout.total_seconds(),
            read=gemini.read_timeout.total_seconds(),
            total=gemini.timeout.total_seconds(),
        ),
    )

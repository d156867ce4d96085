"""Composition root: settings -> store, Gemini client, guards, engine, server, jobs and adapters."""

from __future__ import annotations

import asyncio
import inspect
import signal
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from bot.alerts import AlertHub
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Platform
from bot.engine import Engine
from bot.guards.access import AccessPolicy
from bot.guards.blocklist import BlockList
from bot.guards.limits import RateLimiter
from bot.guards.quota import QuotaGuard
from bot.guards.wordfilter import WordFilter
from bot.llm.gemini import GeminiClient, GeminiTimeouts
from bot.llm.policy import AnswerPolicy
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.sequencer import LocalSequencer, PostgresSequencer, Sequencer
from bot.server import HttpServer
from bot.store import Store
from bot.store.migrate import upgrade_to_head

if TYPE_CHECKING:
    from adapters.base import Adapter

log = get_logger(__name__)


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

    @classmethod
    async def create(cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> App:
        """Migrate the database and build the parts (nothing is listening yet)."""
        clock = clock or SystemClock()
        if migrate:
            await upgrade_to_head(settings.storage.url)
        store = await Store.open(settings.storage.url)
        gemini = settings.gemini
        api_key = gemini.api_key.get_secret_value() if gemini.api_key is not None else ""
        client = GeminiClient(
            api_key=api_key,
            base_url=gemini.base_url,
            model=gemini.model,
            timeouts=GeminiTimeouts(
                connect=gemini.connect_timeout.total_seconds(),
                read=gemini.read_timeout.total_seconds(),
                total=gemini.timeout.total_seconds(),
            ),
        )
        metrics = Metrics()
        limiter = RateLimiter(settings.rate_limits, key_prefix=settings.rate_limits.key_prefix)
        text_filter = WordFilter(settings.filter)
        alerts = AlertHub(clock, interval=gemini.admin_alert_interval.total_seconds())
        quota = QuotaGuard(store, gemini.quota, clock, metrics)
        policy = AnswerPolicy(
            client,
            gemini,
            clock,
            quota=quota,
            alerts=alerts,
            language=settings.conversation.language,
        )
        # Per-conversation order across replicas: PostgreSQL advisory locks (SQLite: in-process only).
        sequencer: Sequencer = (
            PostgresSequencer(settings.storage.url, waiters=settings.storage.lock_connections)
            if store.engine.dialect.name == "postgresql"
            else LocalSequencer()
        )
        blocklist = BlockList(store, clock)
        engine = Engine(
            settings=settings,
            store=store,
            policy=policy,
            clock=clock,
            metrics=metrics,
            access=AccessPolicy(settings),
            limiter=limiter,
            text_filter=text_filter,
            sequencer=sequencer,
            blocklist=blocklist,
        )
        app = cls(settings, clock, store, client, metrics, engine, limiter, alerts)
        app._closers += [client.aclose, store.close, sequencer.aclose, alerts.aclose]
        app.started_at = clock.now()
        app.text_filter = text_filter
        app.quota = quota
        app.blocklist = blocklist
        text_filter.start_watching(settings.filter.reload_interval.total_seconds(), clock.sleep)
        app._closers += [limiter.aclose, text_filter.aclose]
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
        """Delete what the retention policy says must go."""
        now = now or self.clock.now()
        storage = self.settings.storage
        return await self.store.purge(
            turns_before=now - storage.retention,
            # Inbox rows hold no text: they stay for /stats' message counts; where to reply goes sooner.
            inbox_before=now - storage.stats_retention,
            inbox_targets_before=now - storage.retention,
            audit_before=now - storage.audit_retention,
            calls_before=now - storage.stats_retention,
        )

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

    async def follow_up_forever(self, adapters: Sequence[Adapter]) -> None:
        """Tell the senders of messages a dead process accepted but never answered to send them again.

        Nothing received before this process started can still be in progress on SQLite (one process);
        on PostgreSQL other replicas may be answering, so only messages older than any answer can take
        (the retry deadline plus the shutdown grace, with a margin) are followed up.
        """
        settings = self.settings
        in_progress = settings.gemini.retry.deadline + settings.server.shutdown_grace + timedelta(minutes=2)
        single_process = self.store.engine.dialect.name == "sqlite"
        done_once: set[str] = set()
        while True:
            now = self.clock.now()
            before = now - in_progress
            if single_process and self.started_at is not None:
                before = max(before, self.started_at)
            for adapter in adapters:
                if await adapter.ready() is not None:
                    continue  # not connected yet: the next round tries again
                try:
                    for item in await self.engine.follow_ups(Platform(adapter.name), before):
                        await adapter.follow_up(item)
                except Exception:
                    log.exception("follow_up.failed", platform=adapter.name)
                    continue
                done_once.add(adapter.name)
            # Quickly until every adapter had its first round after the start, then once a minute.
            await self.clock.sleep(60.0 if all(a.name in done_once for a in adapters) else 1.0)

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


async def run_service(settings: Settings) -> int:
    """``gembot run``: every enabled adapter, the HTTP server and the jobs, until SIGINT/SIGTERM."""
    enabled = [
        name
        for name, on in (("telegram", settings.telegram.is_enabled), ("slack", settings.slack.is_enabled))
        if on
    ]
    if not enabled:
        if sys.stdin.isatty():
            from adapters.console import run_console

            return await run_console(settings, user=None)
        print(
            "gembot: no platform is enabled "
            "(set TELEGRAM_BOT_TOKEN or SLACK_BOT_TOKEN, or use `gembot console`)",
            file=sys.stderr,
        )
        return 2
    stop = asyncio.Event()
    interrupt = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        # The first SIGINT/SIGTERM starts a graceful stop; a SIGINT during it (Ctrl-C again) cuts the
        # grace period short. A repeated SIGTERM changes nothing.
        if not stop.is_set():
            stop.set()
        elif sig is signal.SIGINT:
            interrupt.set()

    # Before the start-up (migrations, connections): a stop asked for meanwhile ends it cleanly, exit 0.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    async with await App.create(settings) as app:
        if stop.is_set():
            log.info("gembot.stopped_during_start")
            return 0
        from adapters import AdapterUnavailableError, build_enabled

        server = HttpServer(settings.server, app.metrics, app.store)
        try:
            adapters = build_enabled(app, server)
        except AdapterUnavailableError as exc:
            print(f"gembot: {exc}", file=sys.stderr)
            return 2
        stopping = False

        async def shutdown_check() -> str | None:
            # Out of the load balancer while draining: new events go to the other replicas.
            return "shutting down" if stopping else None

        server.add_readiness_check("shutdown", shutdown_check)
        server.add_readiness_check("rate_limits", app.rate_limit_storage_problem)
        if settings.admin_web.enabled:
            from bot.admin_web import mount_admin_web

            mount_admin_web(server, app)
        # The quota gauges show the current windows (one counts from 0 after a roll-over, on every replica).
        server.add_metrics_refresh(app.refresh_quota_gauges)
        await server.start()
        purge_task = asyncio.create_task(app.purge_forever(), name="retention")
        follow_up_task: asyncio.Task[None] | None = None
        try:
            for adapter in adapters:
                await adapter.start()
            follow_up_task = asyncio.create_task(app.follow_up_forever(adapters), name="follow-ups")
            log.info("gembot.started", adapters=enabled, port=server.port)
            await stop.wait()
            stopping = True
            grace = settings.server.shutdown_grace.total_seconds()
            log.info("gembot.stopping", grace_s=grace)
            await stop_adapters(adapters, grace, interrupt=interrupt)
        finally:
            for task in (purge_task, follow_up_task):
                if task is not None:
                    task.cancel()
            await asyncio.gather(
                purge_task, *([follow_up_task] if follow_up_task else []), return_exceptions=True
            )
            await server.stop()
    return 0


async def stop_adapters(adapters: Sequence[Adapter], grace: float, *, interrupt: asyncio.Event) -> bool:
    """Stop every adapter at once and wait up to ``grace`` seconds for their answers in flight.

    All adapters stop taking events at the same moment (webhooks answer 503 so the platform delivers
    again, to another replica; polling stops fetching), then drain together. Returns False when the
    grace period ran out or ``interrupt`` was set first: what is still running is cancelled.
    """
    loop = asyncio.get_running_loop()
    tasks = {asyncio.create_task(_stop_one(a, grace), name=f"stop-{a.name}"): a for a in adapters}
    interrupted = asyncio.ensure_future(interrupt.wait())
    deadline = loop.time() + grace
    pending: set[asyncio.Future[Any]] = set(tasks)
    while pending and not interrupted.done() and (remaining := deadline - loop.time()) > 0:
        done, _ = await asyncio.wait(pending | {interrupted}, timeout=remaining, return_when=FIRST_COMPLETED)
        pending -= done
    interrupted.cancel()
    for task, adapter in tasks.items():
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("gembot.adapter_stop_failed", adapter=adapter.name, error=repr(task.exception()))
    if not pending:
        log.info("gembot.drained")
        return True
    log.warning(
        "gembot.shutdown_cut_short",
        reason="interrupted" if interrupted.done() and not interrupted.cancelled() else "grace period over",
        still_stopping=[adapter.name for task, adapter in tasks.items() if task in pending],
    )
    for future in pending:
        future.cancel()
    await asyncio.wait(pending, timeout=2.0)
    return False


async def _stop_one(adapter: Adapter, grace: float) -> None:
    stop = cast(Callable[..., Awaitable[None]], adapter.stop)
    if "grace" in inspect.signature(stop).parameters:
        await stop(grace=grace)  # the adapter cancels its own stragglers at the deadline
    else:
        await stop()

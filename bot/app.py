"""Composition root: settings -> store, Gemini client, guards, engine, server, jobs and adapters."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.engine import Engine
from bot.guards.access import AccessPolicy
from bot.guards.limits import RateLimiter
from bot.llm.gemini import GeminiClient, GeminiTimeouts
from bot.llm.policy import AnswerPolicy
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.server import HttpServer
from bot.store import Store
from bot.store.migrate import upgrade_to_head

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
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

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
        limiter = RateLimiter(settings.rate_limits)
        engine = Engine(
            settings=settings,
            store=store,
            policy=AnswerPolicy(client, gemini, clock),
            clock=clock,
            metrics=metrics,
            access=AccessPolicy(settings),
            limiter=limiter,
        )
        app = cls(settings, clock, store, client, metrics, engine, limiter)
        app._closers += [client.aclose, store.close]
        return app

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Delete what the retention policy says must go."""
        now = now or self.clock.now()
        storage = self.settings.storage
        return await self.store.purge(
            turns_before=now - storage.retention,
            inbox_before=now - storage.retention,
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
    async with await App.create(settings) as app:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        from adapters import AdapterUnavailableError, build_enabled

        server = HttpServer(settings.server, app.metrics, app.store)
        try:
            adapters = build_enabled(app, server)
        except AdapterUnavailableError as exc:
            print(f"gembot: {exc}", file=sys.stderr)
            return 2
        await server.start()
        purge_task = asyncio.create_task(app.purge_forever(), name="retention")
        try:
            for adapter in adapters:
                await adapter.start()
            log.info("gembot.started", adapters=enabled, port=server.port)
            await stop.wait()
            log.info("gembot.stopping")
            for adapter in reversed(adapters):
                await adapter.stop()
        finally:
            purge_task.cancel()
            await asyncio.gather(purge_task, return_exceptions=True)
            await server.stop()
    return 0

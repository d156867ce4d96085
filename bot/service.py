"""Composition root: the app's parts, the HTTP server, the jobs and every enabled adapter, or the console.

The only module of ``bot`` (with the CLI) that imports ``adapters``; nothing imports it back.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import Sequence
from typing import Any, BinaryIO, TextIO, TypeVar

from adapters import AdapterUnavailableError, enabled_platforms
from adapters.base import Adapter, AdapterDeps, Routes
from adapters.console import converse
from bot.app import App
from bot.config import Settings
from bot.domain import Platform
from bot.engine import longest_answer
from bot.observability.logs import get_logger
from bot.server import HttpServer

log = get_logger(__name__)

SettingsT = TypeVar("SettingsT")


def adapter_deps(app: App, routes: Routes, settings: SettingsT) -> AdapterDeps[SettingsT]:
    """What an adapter is built from: the parts of ``app``, ``routes`` and the platform's ``settings``."""
    return AdapterDeps(
        settings=settings,
        engine=app.engine,
        metrics=app.metrics,
        alerts=app.alerts,
        routes=routes,
        clock=app.clock,
        language=app.settings.conversation.language,
        media=app.settings.media,
    )


def build_adapters(app: App, server: HttpServer) -> list[Adapter]:
    """The adapter of every enabled platform, its routes and readiness check mounted on ``server``."""
    built: list[Adapter] = []
    for platform in enabled_platforms(app.settings):
        adapter = platform.build(adapter_deps(app, server, platform.settings(app.settings)))
        server.add_readiness_check(platform.name, adapter.ready)
        built.append(adapter)
    return built


async def run_console(
    settings: Settings, *, user: str | None, stdin: BinaryIO | None = None, stdout: TextIO | None = None
) -> int:
    """``gembot console``: a terminal conversation through the app's engine; returns the exit status.

    The media janitor runs beside it, and finishes its queue on the way out (what /forget erased)."""
    async with await App.create(settings) as app:
        janitor = asyncio.create_task(app.janitor.run_forever()) if app.janitor is not None else None
        try:
            return await converse(
                app.engine,
                app.alerts,
                model=settings.gemini.model,
                language=settings.conversation.language,
                user=user,
                stdin=stdin,
                stdout=stdout,
                max_file_bytes=settings.media.max_bytes,
            )
        finally:
            if janitor is not None and app.janitor is not None:
                janitor.cancel()
                await asyncio.gather(janitor, return_exceptions=True)
                await app.janitor.sweep()


async def run_service(settings: Settings) -> int:
    """``gembot run``: every enabled adapter, the HTTP server and the jobs, until SIGINT/SIGTERM."""
    enabled = [platform.name for platform in enabled_platforms(settings)]
    if not enabled:
        if sys.stdin.isatty():
            return await run_console(settings, user=None)
        print(
            "gembot: no platform is enabled "
            "(set TELEGRAM_BOT_TOKEN or SLACK_BOT_TOKEN, or use `gembot console`)",
            file=sys.stderr,
        )
        return 2
    # Before the start-up (migrations, connections): a stop asked for meanwhile ends it cleanly, exit 0.
    stop, interrupt = _stop_signals()
    async with await App.create(settings) as app:
        if stop.is_set():
            log.info("gembot.stopped_during_start")
            return 0
        server = HttpServer(settings.server, app.metrics, app.store.database)
        try:
            adapters = build_adapters(app, server)
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
        jobs = [asyncio.create_task(job, name=name) for name, job in app.background_jobs().items()]
        follow_up_task: asyncio.Task[None] | None = None
        try:
            for adapter in adapters:
                await adapter.start()
            follow_up_task = asyncio.create_task(follow_up_forever(app, adapters), name="follow-ups")
            log.info("gembot.started", adapters=enabled, port=server.port)
            await stop.wait()
            stopping = True
            grace = settings.server.shutdown_grace.total_seconds()
            log.info("gembot.stopping", grace_s=grace)
            await stop_adapters(adapters, grace, interrupt=interrupt)
        finally:
            tasks = [*jobs, *([follow_up_task] if follow_up_task else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.stop()
    return 0


def _stop_signals() -> tuple[asyncio.Event, asyncio.Event]:
    """(stop, interrupt): the first SIGINT/SIGTERM sets stop, a graceful stop; a SIGINT during it (Ctrl-C
    again) sets interrupt, cutting the grace period short. A repeated SIGTERM changes nothing."""
    stop = asyncio.Event()
    interrupt = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            stop.set()
        elif sig is signal.SIGINT:
            interrupt.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop, interrupt


async def follow_up_forever(app: App, adapters: Sequence[Adapter]) -> None:
    """Tell the senders of messages a dead process accepted but never answered to send them again.

    Nothing received before this process started can still be in progress on SQLite (one process);
    on PostgreSQL other replicas may be answering, so only messages older than any answer can take
    (the retry deadline plus the shutdown grace, with a margin) are followed up.
    """
    settings = app.settings
    in_progress = longest_answer(settings)
    single_process = app.store.engine.dialect.name == "sqlite"
    done_once: set[str] = set()
    while True:
        now = app.clock.now()
        before = now - in_progress
        if single_process and app.started_at is not None:
            before = max(before, app.started_at)
        for adapter in adapters:
            if await adapter.ready() is not None:
                continue  # not connected yet: the next round tries again
            try:
                for item in await app.engine.follow_ups(Platform(adapter.name), before):
                    await adapter.follow_up(item)
            except Exception:
                log.exception("follow_up.failed", platform=adapter.name)
                continue
            done_once.add(adapter.name)
        # Quickly until every adapter had its first round after the start, then once a minute.
        await app.clock.sleep(60.0 if all(a.name in done_once for a in adapters) else 1.0)


async def stop_adapters(adapters: Sequence[Adapter], grace: float, *, interrupt: asyncio.Event) -> bool:
    """Stop every adapter at once and wait up to ``grace`` seconds for their answers in flight.

    All adapters stop taking events at the same moment (webhooks answer 503 so the platform delivers
    again, to another replica; polling stops fetching), then drain together. Returns False when the
    grace period ran out or ``interrupt`` was set first: what is still running is cancelled.
    """
    loop = asyncio.get_running_loop()
    tasks = {asyncio.create_task(a.stop(grace), name=f"stop-{a.name}"): a for a in adapters}
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

"""The HTTP server: /healthz, /readyz, /metrics, and the webhook routes adapters mount.

/healthz answers 200 while the event loop runs (liveness: restart when it stops answering). /readyz
answers 200 only when the database answers and every enabled adapter's check says it is connected,
else 503 with ``not ready: <part>: <reason>; ...`` (readiness: take the replica out of the load
balancer). /metrics is the Prometheus text format of gembot's own registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from aiohttp import web

from bot.config import ServerSettings
from bot.http_edge import LINGER_S, ConnectionGuard, GuardedSite, name_server
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.store import Database
from bot.store.db import sqlite_path

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else the reason it is not."""

log = get_logger(__name__)

CHECK_TIMEOUT_S: Final = 5.0
"""How long /readyz waits for one check."""
MAX_BODY_BYTES: Final = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CheckState:
    """One readiness check as last asked: its problem now (None when fine) and the last one it had."""

    name: str
    problem: str | None
    last_problem: str | None
    last_problem_at: datetime | None


class HttpServer:
    """One aiohttp application on ``server.host:server.port``."""

    def __init__(self, settings: ServerSettings, metrics: Metrics, database: Database) -> None:
        self._settings = settings
        self._metrics = metrics
        self._db = database
        self._checks: dict[str, ReadinessCheck] = {}
        self._last_problems: dict[str, tuple[datetime, str]] = {}
        self._metrics_refreshers: list[Callable[[], Awaitable[None]]] = []
        self.guard = ConnectionGuard(
            settings.read_timeout.total_seconds(), settings.keepalive_timeout.total_seconds()
        )
        self.app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self.guard.middleware])
        self.app.on_response_prepare.append(name_server)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics_view)
        self._runner: web.AppRunner | None = None
        self.port: int = settings.port

    def add_route(
        self, method: str, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        """Mount an adapter's webhook route (before :meth:`start`)."""
        self.app.router.add_route(method, path, handler)

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Have /readyz ask ``check`` too."""
        self._checks[name] = check

    def add_metrics_refresh(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Have /metrics await ``refresh`` (bounded; a failure is logged) before it renders."""
        self._metrics_refreshers.append(refresh)

    async def start(self) -> None:
        """Listen; with port 0 an ephemeral port is chosen and stored in :attr:`port`."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = GuardedSite(
            self._runner,
            self._settings.host,
            self._settings.port,
            self.guard,
            access_log=None,
            keepalive_timeout=self.guard.keepalive_timeout,
            lingering_time=LINGER_S,
        )
        await site.start()
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readiness(self) -> list[str]:
        """Why the service is not ready (empty when it is): the database, then every registered check.

        The checks run concurrently, each bounded by :data:`CHECK_TIMEOUT_S`, so a wedged dependency
        makes /readyz answer 503 quickly instead of hanging the orchestrator's probe.
        """
        return [f"{state.name}: {state.problem}" for state in await self.check_states() if state.problem]

    async def check_states(self) -> list[CheckState]:
        """Every readiness check asked now (as :meth:`readiness` does), with the last problem it reported."""
        names = ["database", *self._checks]
        checks = [self._database, *self._checks.values()]
        reasons = await asyncio.gather(*(_bounded(check) for check in checks))
        states = []
        for name, reason in zip(names, reasons, strict=True):
            if reason:
                self._last_problems[name] = (datetime.now(UTC), reason)
            at, last = self._last_problems.get(name, (None, None))
            states.append(CheckState(name, reason, last, at))
        return states

    async def _database(self) -> str | None:
        path = sqlite_file(self._db)
        if path is not None and not path.exists():
            # A pooled connection keeps answering on an unlinked file: the volume is gone.
            return f"database file {path} is missing"
        if not await self._db.ping():
            return "unreachable"
        return None

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = await self.readiness()
        if problems:
            return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
        return web.Response(text="ready\n")

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        for refresh in self._metrics_refreshers:
            try:
                await asyncio.wait_for(refresh(), CHECK_TIMEOUT_S)
            except Exception:
                # The scrape still gets every other metric; the refreshed ones keep their last value.
                log.warning("metrics.refresh_failed", exc_info=True)
        return web.Response(body=self._metrics.render(), content_type="text/plain", charset="utf-8")


async def _bounded(check: ReadinessCheck) -> str | None:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        return f"check failed ({exc.__class__.__name__})"


def sqlite_file(database: Database) -> Path | None:
    """The database file of a file-backed SQLite database (None for PostgreSQL or in-memory SQLite)."""
    return sqlite_path(database.engine.url)

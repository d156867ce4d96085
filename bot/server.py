"""The HTTP server: /healthz, /readyz, /metrics, and the webhook routes adapters mount."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.config import ServerSettings
from bot.observability.metrics import Metrics
from bot.store import Store

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else the reason it is not."""


class HttpServer:
    """One aiohttp application on ``server.host:server.port``."""

    def __init__(self, settings: ServerSettings, metrics: Metrics, store: Store) -> None:
        self._settings = settings
        self._metrics = metrics
        self._store = store
        self._checks: dict[str, ReadinessCheck] = {}
        self.app = web.Application(client_max_size=2 * 1024 * 1024)
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

    async def start(self) -> None:
        """Listen; with port 0 an ephemeral port is chosen and stored in :attr:`port`."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = []
        if not await self._store.ping():
            problems.append("database: unreachable")
        for name, check in self._checks.items():
            try:
                reason = await check()
            except Exception as exc:
                reason = f"check failed ({exc.__class__.__name__})"
            if reason:
                problems.append(f"{name}: {reason}")
        if problems:
            return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
        return web.Response(text="ready\n")

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), content_type="text/plain", charset="utf-8")

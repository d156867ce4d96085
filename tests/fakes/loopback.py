"""What every emulator shares: an aiohttp app on 127.0.0.1 (port 0 = any free one), as an async context."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from aiohttp import web


class LoopbackServer:
    """Serves an aiohttp application on loopback; subclasses build the app and add their own start/stop."""

    host: str = "127.0.0.1"
    port: int = 0
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def _serve(self, app: web.Application, **runner_options: Any) -> str:
        """Listen with ``app``; returns and records the base URL (``http://127.0.0.1:PORT``)."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, **runner_options)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.base_url = f"http://{self.host}:{self.port}"
        return self.base_url

    async def _close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def start(self) -> str:
        """Start serving; returns the base URL."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving."""
        await self._close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

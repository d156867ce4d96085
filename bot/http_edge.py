"""What one HTTP client may hold of the server: connections, time, bytes, and what it learns from it.

- **Time.** A request's headers must arrive within ``read_timeout`` of the connection opening (or of the
  first byte after a response), and its body within ``read_timeout`` of the headers (else 408, the rest
  read for at most :data:`LINGER_S`, then closed); a connection idle after a response is closed after
  ``keepalive_timeout``.
- **Connections.** At most :func:`connection_cap` connections are open (a quarter of the descriptor limit,
  at most :data:`MAX_CONNECTIONS`; the listen backlog takes another quarter at most). One more closes the
  oldest connection that is not being answered (idle, or still sending its headers), so half-open
  connections can neither exhaust the descriptors nor lock out /healthz and the webhooks.
- **Bytes.** A body over the application's ``client_max_size`` is refused with 413.
- **What it learns.** Every response, error pages included, says ``Server: gembot``; a malformed request is
  one ``http.bad_request`` line with the parser's error class, never the bytes it was sent.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from bot.observability.logs import get_logger

log = get_logger(__name__)

SERVER_NAME: Final = "gembot"
MAX_CONNECTIONS: Final = 1024
MIN_CONNECTIONS: Final = 8
MAX_BACKLOG: Final = 128
LINGER_S: Final = 1.0
"""After a refused body (413, 408), how long the rest is read and dropped so the client sees the answer."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def connection_cap(nofile: int | None = None) -> int:
    """Open connections allowed with ``nofile`` descriptors (default: this process's soft limit)."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, nofile // 4))


class ConnectionGuard:
    """Tracks the server's connections: their deadlines, which are being answered, and the cap."""

    def __init__(self, read_timeout: float, keepalive_timeout: float, cap: int | None = None) -> None:
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self.cap = cap if cap is not None else connection_cap()
        # Connections not being answered, oldest first (the first to close when the cap is reached).
        self._waiting: dict[GuardedHandler, None] = {}
        self._busy: set[GuardedHandler] = set()

    @property
    def backlog(self) -> int:
        """The listen backlog: connections accepted in one go may add this many descriptors at once."""
        return min(MAX_BACKLOG, self.cap)

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._waiting) + len(self._busy)

    def opened(self, handler: GuardedHandler) -> None:
        """A new connection: its headers are due within ``read_timeout``; over the cap, one is closed."""
        self._waiting[handler] = None
        handler.arm(self.read_timeout)
        if self.open_connections > self.cap:
            oldest = next(iter(self._waiting))
            # With every connection being answered, the newcomer is the one refused.
            oldest.force_close()
            self.closed(oldest)

    def closed(self, handler: GuardedHandler) -> None:
        """The connection is gone."""
        handler.disarm()
        self._waiting.pop(handler, None)
        self._busy.discard(handler)

    def answering(self, handler: GuardedHandler) -> None:
        """A request arrived whole on it: no deadline and never closed for the cap while answered."""
        handler.disarm()
        if handler in self._waiting:  # else closed already: the cap made room with it
            del self._waiting[handler]
            self._busy.add(handler)

    def answered(self, handler: GuardedHandler) -> None:
        """The answer is out: idle again, closed after ``keepalive_timeout`` without a new request."""
        if handler in self._busy:
            self._busy.discard(handler)
            self._waiting[handler] = None
            handler.idle(self.keepalive_timeout)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection as being answered and reads the body within ``read_timeout``."""
        protocol = request.protocol
        guarded = protocol if isinstance(protocol, GuardedHandler) else None
        if guarded is not None:
            self.answering(guarded)
        try:
            if request.can_read_body:
                try:
                    async with asyncio.timeout(self.read_timeout):
                        await request.read()
                except TimeoutError:
                    log.info("http.request_refused", reason="slow_body", bytes=request.content_length)
                    raise web.HTTPRequestTimeout(headers={hdrs.CONNECTION: "close"}) from None
                except web.HTTPRequestEntityTooLarge:
                    log.info("http.request_refused", reason="too_large", bytes=request.content_length)
                    raise
            return await handler(request)
        finally:
            if guarded is not None:
                self.answered(guarded)


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol, reporting to a :class:`ConnectionGuard`."""

    def __init__(self, guard: ConnectionGuard, manager: web.Server, **options: Any) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **options)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._idle = False

    def arm(self, seconds: float) -> None:
        """Close the connection in ``seconds`` unless a request is being answered by then."""
        self.disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self.force_close)

    def idle(self, seconds: float) -> None:
        """After a response: close in ``seconds``; the next request's first byte starts its read timeout."""
        self.arm(seconds)
        self._idle = True

    def disarm(self) -> None:
        """No deadline (a request is being answered, or the connection is gone)."""
        self._idle = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle and data:
            self.arm(self._guard.read_timeout)
        super().data_received(data)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers[hdrs.SERVER] = SERVER_NAME
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            # The client's fault, and its message quotes the bytes it sent.
            log.info("http.bad_request", reason=exc.__class__.__name__, status=exc.code)
            return
        super().log_exception(*args, **kw)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedHandler` protocols."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard, **options: Any
    ) -> None:
        super().__init__(runner, backlog=guard.backlog)
        self._host = host
        self._port = port
        self._guard = guard
        self._options = options

    @property
    def name(self) -> str:
        """The URL it listens on."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen."""
        await super().start()
        manager = self._runner.server
        assert manager is not None

        def protocol() -> GuardedHandler:
            return GuardedHandler(self._guard, manager, **self._options)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


async def name_server(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: say ``Server: gembot`` instead of the Python and aiohttp versions."""
    response.headers[hdrs.SERVER] = SERVER_NAME

"""An httpx transport that spreads requests over several small connection pools.

httpcore's pool re-scans every connection it holds each time a request starts or ends, so one pool of
N busy connections costs O(N) per event and O(N^2) per burst: with 200 concurrent Gemini streams that
scan took close to half of the event loop's CPU (see docs/benchmarks.md), and python-telegram-bot's
client (512 connections) did the same under a burst of 1,000 chats. Shards of at most ``shard_size``
connections keep each scan short (8: under that burst, shards of 32 still left the scan at 17% of the
CPU, shards of 8 at 6%) while the client above stays one shared ``httpx.AsyncClient``: the Gemini
client's and, through ``HTTPXRequest(httpx_kwargs=...)``, the Telegram adapter's.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def pooled_transport(*, max_connections: int, keepalive_expiry: float = 30.0) -> httpx.AsyncBaseTransport:
    """The transport of the shared clients (Gemini's, the Telegram adapter's)."""
    if os.environ.get("GEMBOT_HTTP") == "httpcore":
        return ShardedTransport(max_connections=max_connections, keepalive_expiry=keepalive_expiry)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
    )
    return AiohttpPoolTransport(limits=limits)


# Most specific first: the first class the aiohttp failure is an instance of decides.
_HTTPX_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),
)


def _as_httpx(exc: BaseException) -> BaseException:
    """The httpx failure httpcore would have raised for an aiohttp one (a connection refused is a
    ConnectError, a server gone mid-body a RemoteProtocolError); other exceptions as they are."""
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) and exc.__cause__ is not None else exc
    for aiohttp_error, httpx_error in _HTTPX_ERRORS:
        if isinstance(cause, aiohttp_error):
            mapped = httpx_error(str(cause) or type(cause).__name__)
            mapped.__cause__ = cause
            return mapped
    return exc


class AiohttpPoolTransport(AiohttpTransport):
    """httpx's API over aiohttp's connection pool, failing with the httpx errors httpcore raises.

    aiohttp's pool hands out a connection without scanning the others (httpcore's pool re-scans all of
    them on every request event, see ``ShardedTransport``), and its parser is in C.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; its body is read (and fails) through the same mapping."""
        try:
            response = await super().handle_async_request(request)
        except Exception as exc:
            raise _as_httpx(exc) from exc.__cause__ or exc
        response.stream = _MappedStream(response.stream)
        return response


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose aiohttp failures become httpx ones."""

    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            raise _as_httpx(exc) from exc.__cause__ or exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except Exception as exc:
            raise _as_httpx(exc) from exc.__cause__ or exc


class ShardedTransport(httpx.AsyncBaseTransport):
    """Sends each request through the least busy of several ``AsyncHTTPTransport`` pools."""

    def __init__(self, *, max_connections: int, shard_size: int = 8, keepalive_expiry: float = 30.0) -> None:
        shards = max(1, math.ceil(max_connections / shard_size))
        per_shard = max(1, math.ceil(max_connections / shards))
        limits = httpx.Limits(
            max_connections=per_shard, max_keepalive_connections=per_shard, keepalive_expiry=keepalive_expiry
        )
        # One TLS context for all: each transport would otherwise load the CA bundle (about 1 MB each).
        tls = httpx.create_ssl_context()
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)]
        self._busy = [0] * shards

    @property
    def shard_count(self) -> int:
        """How many pools requests are spread over."""
        return len(self._shards)

    @property
    def busy(self) -> tuple[int, ...]:
        """Requests in flight on each shard, responses still being read included."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the shard with the fewest requests in flight."""
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        # The connection stays busy until the body is read or closed (streams), so count until then.
        response.stream = _ReleasingStream(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every pool."""
        for shard in self._shards:
            await shard.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """Wraps a response body and calls ``release`` once when it is closed."""

    def __init__(
        self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, release: Callable[[], None]
    ) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._release = release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._release()

"""The transport under the shared HTTP clients (Gemini's, and the Telegram adapter's through PTB's request).

httpx's API over aiohttp's connection pool (httpx-aiohttp). httpcore's own pool re-scans every
connection it holds each time a request starts or ends, so a pool of N busy connections costs O(N) per
event: with 200 concurrent Gemini streams that scan took close to half of the event loop's CPU, and
even spread over shards of 8 connections httpcore, httpx and anyio together were about a fifth of the
CPU per answered message (docs/benchmarks.md). aiohttp hands out a connection without a scan and parses
HTTP in C. Failures are raised as the httpx errors httpcore raises, so callers classify them as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def pooled_transport(*, max_connections: int, keepalive_expiry: float = 30.0) -> httpx.AsyncBaseTransport:
    """The transport of the shared clients (Gemini's, the Telegram adapter's)."""
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
    """httpx's API over aiohttp's connection pool, failing with the httpx errors httpcore raises."""

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

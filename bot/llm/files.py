"""The Gemini Files API: resumable upload, get and delete of files a request refers to by URI.

An upload starts a resumable session (``POST /upload/{version}/files`` with ``X-Goog-Upload-Protocol:
resumable`` and ``X-Goog-Upload-Command: start``; the session URL comes back in ``X-Goog-Upload-URL``),
then sends the bytes in one ``upload, finalize`` step. A file is usable once its state is ``ACTIVE``
(video is ``PROCESSING`` first); Gemini deletes files by itself after their ``expirationTime``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx

from bot.observability.logs import get_logger

__all__ = ["FileUploadError", "FilesApi", "RemoteFile"]

log = get_logger(__name__)

_PIECE: Final = 256 * 1024
_RETRYABLE: Final = frozenset({408, 429, 500, 502, 503, 504})
_FRACTION: Final = re.compile(r"(\.\d{6})\d+")


class FileUploadError(Exception):
    """A file could not be uploaded (after retries) or never became usable."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file held by the Files API: ``name`` is ``files/…``, ``uri`` what a ``fileData`` part names."""

    name: str
    uri: str
    mime_type: str
    state: str
    expires_at: datetime | None


def _remote_file(payload: object) -> RemoteFile:
    if not isinstance(payload, Mapping):
        raise ValueError("not a File object")
    file = payload.get("file", payload)
    if not isinstance(file, Mapping) or not isinstance(file.get("name"), str):
        raise ValueError("a File object without a name")
    return RemoteFile(
        name=file["name"],
        uri=str(file.get("uri") or ""),
        mime_type=str(file.get("mimeType") or ""),
        state=str(file.get("state") or "STATE_UNSPECIFIED"),
        expires_at=_time(file.get("expirationTime")),
    )


def _time(value: object) -> datetime | None:
    """An RFC 3339 time (nanoseconds allowed) as an aware datetime, None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None


class FilesApi:
    """Upload, look up and delete files, over a connection pool of its own."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        api_version: str = "v1beta",
        attempts: int = 3,
        retry_delay: float = 1.0,
        active_timeout: float = 300.0,
        poll_interval: float = 2.0,
        timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._version = api_version
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._active_timeout = active_timeout
        self._poll = poll_interval
        self._sleep = sleep
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"x-goog-api-key": self._key, **extra}

    async def upload(self, data: bytes, mime_type: str, display_name: str) -> RemoteFile:
        """Upload ``data`` and wait until the file is ``ACTIVE``; transient failures are retried.

        Raises :class:`FileUploadError` when every attempt failed, the file failed processing or did not
        become usable within the time allowed (a file uploaded but unusable is deleted again).
        """
        last = "no attempt"
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._retry_delay * 2 ** (attempt - 1))
            try:
                file = await self._upload_once(data, mime_type, display_name)
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
                continue
            except _Status as status:
                last = f"HTTP {status.code}"
                if status.code not in _RETRYABLE:
                    break
                continue
            return await self._until_active(file)
        log.warning("files.upload_failed", mime_type=mime_type, size=len(data), reason=last)
        raise FileUploadError(f"upload failed: {last}")

    async def _upload_once(self, data: bytes, mime_type: str, display_name: str) -> RemoteFile:
        start = await self._http.post(
            f"{self._base}/upload/{self._version}/files",
            headers=self._headers(
                **{
                    "X-Goog-Upload-Protocol": "resumable",
                    "X-Goog-Upload-Command": "start",
                    "X-Goog-Upload-Header-Content-Length": str(len(data)),
                    "X-Goog-Upload-Header-Content-Type": mime_type,
                    "Content-Type": "application/json",
                }
            ),
            content=json.dumps({"file": {"displayName": display_name[:512]}}).encode(),
        )
        if start.status_code != 200:
            raise _Status(start.status_code)
        session = start.headers.get("x-goog-upload-url")
        if not session:
            raise ValueError("no upload URL in the answer")
        sent = await self._http.post(
            session,
            headers=self._headers(
                **{
                    "X-Goog-Upload-Command": "upload, finalize",
                    "X-Goog-Upload-Offset": "0",
                    "Content-Length": str(len(data)),
                }
            ),
            content=_pieces(data),
        )
        if sent.status_code != 200:
            raise _Status(sent.status_code)
        return _remote_file(sent.json())

    async def _until_active(self, file: RemoteFile) -> RemoteFile:
        waited = 0.0
        while file.state == "PROCESSING" and waited < self._active_timeout:
            await self._sleep(self._poll)
            waited += self._poll
            found = await self.get(file.name)
            if found is None:
                break
            file = found
        if file.state != "ACTIVE":
            await self.delete(file.name)
            log.warning("files.not_active", state=file.state, waited=waited)
            raise FileUploadError(f"the file is {file.state}")
        return file

    async def get(self, name: str) -> RemoteFile | None:
        """The file's current state, None when it is gone (or cannot be read just now)."""
        try:
            response = await self._http.get(f"{self._base}/{self._version}/{name}", headers=self._headers())
            if response.status_code != 200:
                return None
            return _remote_file(response.json())
        except (httpx.HTTPError, ValueError):
            return None

    async def delete(self, name: str) -> bool:
        """Delete the file; True once it is gone (deleted now, or no longer there), False to try later."""
        try:
            response = await self._http.delete(
                f"{self._base}/{self._version}/{name}", headers=self._headers()
            )
        except httpx.HTTPError:
            return False
        # An expired or already deleted file answers 403 or 404: it is gone all the same.
        return response.status_code in (200, 204, 403, 404)


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    """``data`` in pieces: sent whole, the HTTP layer would join it with its framing into a second copy."""
    view = memoryview(data)
    for start in range(0, len(view), _PIECE):
        yield bytes(view[start : start + _PIECE])


class _Status(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def file_part(file_uri: str, mime_type: str) -> dict[str, Any]:
    """The ``fileData`` part naming an uploaded file."""
    return {"fileData": {"mimeType": mime_type, "fileUri": file_uri}}

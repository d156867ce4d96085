"""Files shared in Slack messages: which ones to fetch (pure), and downloading them as ``Attachment``s.

A file is downloaded from its ``url_private_download`` with the bot token (``Authorization: Bearer``;
the bot needs the ``files:read`` scope). Without a valid token Slack does not refuse with an error
status but redirects to its sign-in page, so a redirect or an HTML page counts as a failed download.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import Attachment, AttachmentProblem
from bot.observability.logs import get_logger

log = get_logger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class SlackFile:
    """A file of a message, still on Slack. ``url`` is "" when Slack gives no download link (a file
    hosted elsewhere, a deleted one)."""

    id: str
    url: str
    mime_type: str
    placeholder: str
    name: str = ""
    size: int | None = None
    check_info: bool = False  # a stub (Slack Connect): files.info gives the file object


def event_files(event: Mapping[str, Any]) -> tuple[SlackFile, ...]:
    """The files of a ``message``/``app_mention`` event, in the order shown."""
    files = event.get("files")
    if not isinstance(files, list):
        return ()
    return tuple(_file(item) for item in files if isinstance(item, Mapping))


def _file(item: Mapping[str, Any]) -> SlackFile:
    if item.get("file_access") == "check_file_info":
        return SlackFile(
            id=str(item.get("id") or ""), url="", mime_type="", placeholder="[file]", check_info=True
        )
    name = str(item.get("name") or item.get("title") or "")
    mime = str(item.get("mimetype") or "")
    size = item.get("size")
    if item.get("mode") == "snippet":
        # A snippet is text, whatever language it is highlighted as (its mimetype may name the language).
        mime, label = "text/plain", "snippet"
    elif mime == "application/pdf":
        label = "PDF"
    elif mime.startswith("image/"):
        label = "image"
    elif mime.startswith("audio/"):
        label = "audio"
    elif mime.startswith("video/"):
        label = "video"
    else:
        label = "file"
    url = item.get("url_private_download") or ""
    return SlackFile(
        id=str(item.get("id") or ""),
        url=url if isinstance(url, str) and item.get("mode") != "tombstone" else "",
        mime_type=mime,
        placeholder=f"[{label} {name}]" if name else f"[{label}]",
        name=name,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


async def resolve(client: AsyncWebClient, files: Sequence[SlackFile]) -> tuple[SlackFile, ...]:
    """``files`` with every stub replaced by its file object from ``files.info`` (left as it is, to be
    reported unavailable, when Slack refuses)."""
    return tuple(await asyncio.gather(*(_resolved(client, file) for file in files)))


async def _resolved(client: AsyncWebClient, file: SlackFile) -> SlackFile:
    if not file.check_info or not file.id:
        return file
    try:
        response = await client.files_info(file=file.id)
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack.file_info_failed", file_id=file.id, error=exc.__class__.__name__)
        return file
    found = response.get("file")
    return _file(found) if isinstance(found, Mapping) else file


async def download_all(
    session: aiohttp.ClientSession, token: str, files: Sequence[SlackFile], max_bytes: int
) -> tuple[Attachment, ...]:
    """Every file downloaded (concurrently), in order; one that could not be is marked why."""
    return tuple(await asyncio.gather(*(download(session, token, file, max_bytes) for file in files)))


async def download(session: aiohttp.ClientSession, token: str, file: SlackFile, max_bytes: int) -> Attachment:
    """``file``'s bytes with the bot token; not downloaded when its declared size is over ``max_bytes``,
    and given up when more than that arrives."""
    if file.size is not None and file.size > max_bytes:
        log.info("slack.file_too_large", file_id=file.id, size=file.size)
        return _missing(file, file.size, AttachmentProblem.TOO_LARGE)
    if not file.url:
        log.warning("slack.file_unavailable", file_id=file.id, reason="no_download_url")
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(file.url, headers=headers, allow_redirects=False) as response:
            content_type = response.headers.get("Content-Type", "")
            sign_in = content_type.startswith("text/html") and file.mime_type != "text/html"
            if response.status != 200 or sign_in:
                # A redirect or page is Slack's sign-in: the token was refused (or lacks files:read).
                log.warning("slack.file_unavailable", file_id=file.id, status=response.status)
                return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
            data = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    log.info("slack.file_too_large", file_id=file.id, size=len(data))
                    return _missing(file, len(data), AttachmentProblem.TOO_LARGE)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack.file_unavailable", file_id=file.id, error=exc.__class__.__name__)
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    except Exception:
        # Whatever went wrong, the message is still answered (with the notice for a missing file).
        log.exception("slack.file_download_crashed", file_id=file.id)
        return _missing(file, file.size or 0, AttachmentProblem.UNAVAILABLE)
    return Attachment(file.mime_type, bytes(data), file.placeholder, file.name, len(data))


def _missing(file: SlackFile, size: int, problem: AttachmentProblem) -> Attachment:
    return Attachment(file.mime_type, b"", file.placeholder, file.name, size, problem)

"""The Gemini Files API part of the emulator, and the checks Gemini makes on the files a request names.

Resumable upload: ``POST /upload/{version}/files`` with ``X-Goog-Upload-Protocol: resumable`` and
``X-Goog-Upload-Command: start`` (the declared length and type in ``X-Goog-Upload-Header-Content-Length``
and ``-Type``, a JSON ``{"file": {"displayName"}}`` body) answers 200 with the session in
``X-Goog-Upload-URL``; ``POST`` of the bytes there with ``X-Goog-Upload-Command: upload, finalize`` and
``X-Goog-Upload-Offset: 0`` answers ``{"file": File}``. ``GET /{version}/files/{id}`` gives the File,
``DELETE`` removes it (``{}``). A File has ``name`` (``files/{id}``), ``uri``, ``mimeType``,
``sizeBytes``, ``createTime``, ``expirationTime`` (48 hours on), ``state`` (video is ``PROCESSING``
for a while, then ``ACTIVE``). A file that expired or never existed answers 403 PERMISSION_DENIED, to
``GET``, ``DELETE`` and a request naming it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

__all__ = ["FilesService", "StoredFile", "media_parts_of"]

LIFETIME = timedelta(hours=48)

# The types Gemini documents for images, audio, video, documents and text, as it spells them.
GEMINI_MIME_TYPES = frozenset(
    [
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/heic",
        "image/heif",
        "audio/wav",
        "audio/mp3",
        "audio/mpeg",
        "audio/aiff",
        "audio/aac",
        "audio/ogg",
        "audio/flac",
        "video/mp4",
        "video/mpeg",
        "video/mov",
        "video/avi",
        "video/x-flv",
        "video/mpg",
        "video/webm",
        "video/wmv",
        "video/3gpp",
        "application/pdf",
        "application/x-javascript",
        "text/javascript",
        "application/x-python",
        "text/x-python",
        "text/plain",
        "text/html",
        "text/css",
        "text/md",
        "text/csv",
        "text/xml",
        "text/rtf",
    ]
)


def _error(code: int, status: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "status": status}}, status=code)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, as Google writes them


@dataclass
class StoredFile:
    """One file the emulator holds."""

    name: str
    display_name: str
    mime_type: str
    data: bytes
    created_at: datetime
    expires_at: datetime
    ready_at: float  # monotonic time it becomes ACTIVE

    def state(self) -> str:
        return "ACTIVE" if time.monotonic() >= self.ready_at else "PROCESSING"

    def resource(self, base_url: str, version: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": _stamp(self.created_at),
            "updateTime": _stamp(self.created_at),
            "expirationTime": _stamp(self.expires_at),
            "sha256Hash": base64.b64encode(secrets.token_bytes(32)).decode(),
            "uri": f"{base_url}/{version}/{self.name}",
            "state": self.state(),
            "source": "UPLOADED",
        }


@dataclass
class _Session:
    mime_type: str
    length: int
    display_name: str


@dataclass
class FilesService:
    """The emulator's files: upload, get, delete, expiry; scriptable failures."""

    base_url: Callable[[], str]
    processing_seconds: float = 0.3  # how long a video stays PROCESSING
    files: dict[str, StoredFile] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    fail_uploads: int = 0  # the next N upload starts answer 503
    fail_deletes: int = 0  # the next N deletes answer 503
    uploads: int = 0
    _sessions: dict[str, _Session] = field(default_factory=dict)

    def routes(self, app: web.Application, auth: Callable[[web.Request], web.Response | None]) -> None:
        """Add the Files API routes to ``app``; ``auth`` checks the API key."""

        def guarded(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
            async def run(request: web.Request) -> web.StreamResponse:
                denied = auth(request)
                return denied if denied is not None else await handler(request)

            return run

        app.router.add_post("/upload/{version}/files", guarded(self._upload))
        app.router.add_get("/{version}/files/{id}", guarded(self._get))
        app.router.add_delete("/{version}/files/{id}", guarded(self._delete))

    # -- inspection and scripting

    def expire(self, name: str) -> None:
        """Let the file's 48 hours pass: Gemini deletes it and answers 403 for it from now on."""
        self.files.pop(name, None)

    def names(self) -> set[str]:
        """The names (``files/…``) of the files held now."""
        return set(self.files)

    def find(self, uri_or_name: str) -> StoredFile | None:
        """The file a ``fileUri`` or name refers to, if it is still held."""
        name = "files/" + uri_or_name.rstrip("/").rsplit("/", 1)[-1]
        return self.files.get(name)

    # -- handlers

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        command = request.headers.get("X-Goog-Upload-Command", "").replace(" ", "").lower()
        if "upload_id" not in request.query:
            return await self._start(request, command)
        session = self._sessions.get(request.query["upload_id"])
        if session is None:
            return _error(404, "NOT_FOUND", "Upload session not found.")
        if command != "upload,finalize" or request.headers.get("X-Goog-Upload-Offset") != "0":
            return _error(400, "INVALID_ARGUMENT", f"Unsupported upload command: {command}")
        data = await request.read()
        if len(data) != session.length:
            return _error(400, "INVALID_ARGUMENT", "The uploaded size does not match the declared size.")
        del self._sessions[request.query["upload_id"]]
        now = datetime.now(UTC)
        video = session.mime_type.startswith("video/")
        file = StoredFile(
            name=f"files/{secrets.token_hex(6)}",
            display_name=session.display_name,
            mime_type=session.mime_type,
            data=data,
            created_at=now,
            expires_at=now + LIFETIME,
            ready_at=time.monotonic() + (self.processing_seconds if video else 0.0),
        )
        self.files[file.name] = file
        self.uploads += 1
        version = request.match_info["version"]
        response = web.json_response({"file": file.resource(self.base_url(), version)})
        response.headers["X-Goog-Upload-Status"] = "final"
        return response

    async def _start(self, request: web.Request, command: str) -> web.StreamResponse:
        if request.headers.get("X-Goog-Upload-Protocol") != "resumable" or command != "start":
            return _error(400, "INVALID_ARGUMENT", "Only resumable uploads are emulated.")
        if self.fail_uploads > 0:
            self.fail_uploads -= 1
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        try:
            length = int(request.headers["X-Goog-Upload-Header-Content-Length"])
            body = json.loads(await request.read() or b"{}")
        except (KeyError, ValueError):
            return _error(400, "INVALID_ARGUMENT", "Missing or invalid upload headers.")
        mime_type = request.headers.get("X-Goog-Upload-Header-Content-Type", "")
        display = body.get("file", {}).get("displayName", "") if isinstance(body, Mapping) else ""
        upload_id = secrets.token_urlsafe(12)
        self._sessions[upload_id] = _Session(mime_type, length, str(display))
        version = request.match_info["version"]
        response = web.Response(status=200)
        response.headers["X-Goog-Upload-URL"] = (
            f"{self.base_url()}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        )
        response.headers["X-Goog-Upload-Status"] = "active"
        return response

    async def _get(self, request: web.Request) -> web.StreamResponse:
        file = self.files.get(f"files/{request.match_info['id']}")
        if file is None:
            return self._denied(request.match_info["id"])
        return web.json_response(file.resource(self.base_url(), request.match_info["version"]))

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        if self.fail_deletes > 0:
            self.fail_deletes -= 1
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        name = f"files/{request.match_info['id']}"
        if self.files.pop(name, None) is None:
            return self._denied(request.match_info["id"])
        self.deleted.append(name)
        return web.json_response({})

    @staticmethod
    def _denied(file_id: str) -> web.Response:
        return _error(
            403,
            "PERMISSION_DENIED",
            f"You do not have permission to access the File {file_id} or it may not exist.",
        )

    # -- the checks of a generate request

    def check_request(self, body: Any) -> web.Response | None:
        """Gemini's answer to a request naming a type it does not take or a file it does not hold (or
        not yet ACTIVE), None when the request's files are fine."""
        for kind, part in media_parts_of(body):
            mime = str(part.get("mimeType") or part.get("mime_type") or "")
            if mime not in GEMINI_MIME_TYPES:
                return _error(400, "INVALID_ARGUMENT", f"Unsupported MIME type: {mime}")
            if kind != "fileData":
                continue
            uri = str(part.get("fileUri") or part.get("file_uri") or "")
            file = self.find(uri)
            if file is None:
                return self._denied(uri.rsplit("/", 1)[-1])
            if file.state() != "ACTIVE":
                return _error(
                    400,
                    "FAILED_PRECONDITION",
                    f"The File {file.name.removeprefix('files/')} is not in an ACTIVE state and usage is "
                    "not allowed.",
                )
        return None


def media_parts_of(body: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """("inlineData" or "fileData", the part's value) for every media part of a generate body."""
    if not isinstance(body, Mapping):
        return
    for content in body.get("contents") or []:
        if not isinstance(content, Mapping):
            continue
        for part in content.get("parts") or []:
            if not isinstance(part, Mapping):
                continue
            for camel, snake in (("inlineData", "inline_data"), ("fileData", "file_data")):
                value = part.get(camel, part.get(snake))
                if isinstance(value, Mapping):
                    yield camel, value

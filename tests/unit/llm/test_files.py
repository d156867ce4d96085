"""The Files API client against the emulator: resumable upload, PROCESSING then ACTIVE, retries, get and
delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.llm.files import FilesApi, FileUploadError
from tests.fakes.gemini import GeminiEmulator

KEY = "files-key"
MEDIA = Path(__file__).resolve().parents[2] / "media"


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiEmulator]:
    async with GeminiEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
async def files(gemini: GeminiEmulator) -> AsyncIterator[FilesApi]:
    api = FilesApi(api_key=KEY, base_url=gemini.base_url, retry_delay=0.0, poll_interval=0.1)
    yield api
    await api.aclose()


async def test_a_pdf_is_uploaded_whole_and_is_active_at_once(gemini: GeminiEmulator, files: FilesApi) -> None:
    data = (MEDIA / "report.pdf").read_bytes()
    remote = await files.upload(data, "application/pdf", "report.pdf")
    assert remote.state == "ACTIVE" and remote.mime_type == "application/pdf"
    assert remote.uri == f"{gemini.base_url}/v1beta/{remote.name}"
    held = gemini.files.files[remote.name]
    assert held.data == data and held.display_name == "report.pdf"
    assert remote.expires_at is not None
    assert timedelta(hours=47) < remote.expires_at - datetime.now(UTC) <= timedelta(hours=48)
    assert (await files.get(remote.name)) == remote


async def test_a_video_is_waited_for_until_it_is_active(gemini: GeminiEmulator, files: FilesApi) -> None:
    gemini.files.processing_seconds = 0.3
    remote = await files.upload((MEDIA / "video.mp4").read_bytes(), "video/mp4", "video.mp4")
    assert remote.state == "ACTIVE"


async def test_a_video_that_never_becomes_active_fails_and_is_deleted(gemini: GeminiEmulator) -> None:
    gemini.files.processing_seconds = 60
    api = FilesApi(api_key=KEY, base_url=gemini.base_url, poll_interval=0.05, active_timeout=0.2)
    try:
        with pytest.raises(FileUploadError, match="PROCESSING"):
            await api.upload((MEDIA / "video.mp4").read_bytes(), "video/mp4", "video.mp4")
    finally:
        await api.aclose()
    assert gemini.files.names() == set() and len(gemini.files.deleted) == 1


async def test_transient_upload_failures_are_retried(gemini: GeminiEmulator, files: FilesApi) -> None:
    gemini.files.fail_uploads = 2
    remote = await files.upload(b"hello", "text/plain", "hello.txt")
    assert remote.state == "ACTIVE" and gemini.files.uploads == 1


async def test_an_upload_failing_every_attempt_raises(gemini: GeminiEmulator, files: FilesApi) -> None:
    gemini.files.fail_uploads = 3
    with pytest.raises(FileUploadError, match="503"):
        await files.upload(b"hello", "text/plain", "hello.txt")
    assert gemini.files.names() == set()


async def test_a_wrong_key_is_not_retried(gemini: GeminiEmulator) -> None:
    api = FilesApi(api_key="wrong", base_url=gemini.base_url, retry_delay=0.0)
    try:
        with pytest.raises(FileUploadError, match="HTTP 400"):
            await api.upload(b"hello", "text/plain", "hello.txt")
    finally:
        await api.aclose()


async def test_delete_is_done_once_the_file_is_gone(gemini: GeminiEmulator, files: FilesApi) -> None:
    remote = await files.upload(b"hello", "text/plain", "hello.txt")
    gemini.files.fail_deletes = 1
    assert not await files.delete(remote.name)  # 503: try later
    assert await files.delete(remote.name)
    assert gemini.files.deleted == [remote.name]
    assert await files.delete(remote.name)  # already gone (403): done all the same
    assert await files.get(remote.name) is None


async def _generate(gemini: GeminiEmulator, parts: list[dict[str, object]]) -> tuple[int, dict[str, object]]:
    import httpx

    body = {"contents": [{"role": "user", "parts": [{"text": "what is it?"}, *parts]}]}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{gemini.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": KEY},
            json=body,
        )
    return response.status_code, response.json()


async def test_the_emulator_refuses_what_gemini_refuses(gemini: GeminiEmulator, files: FilesApi) -> None:
    status, body = await _generate(gemini, [{"inlineData": {"mimeType": "image/gif", "data": "R0lG"}}])
    assert status == 400 and "Unsupported MIME type: image/gif" in str(body)
    huge = "A" * (21 * 1024 * 1024)
    status, body = await _generate(gemini, [{"inlineData": {"mimeType": "image/png", "data": huge}}])
    assert status == 400 and "payload size exceeds" in str(body)
    remote = await files.upload(b"hello", "text/plain", "hello.txt")
    ok = {"fileData": {"mimeType": "text/plain", "fileUri": remote.uri}}
    assert (await _generate(gemini, [ok]))[0] == 200
    gemini.files.expire(remote.name)
    status, body = await _generate(gemini, [ok])
    assert status == 403 and "may not exist" in str(body)


async def test_a_file_gone_at_gemini_is_a_bad_request_not_a_bad_key() -> None:
    from bot.llm.errors import BadKeyError, BadRequestError, error_from_response

    body = {
        "error": {
            "code": 403,
            "message": "You do not have permission to access the File abc123 or it may not exist.",
            "status": "PERMISSION_DENIED",
        }
    }
    assert type(error_from_response(403, body)) is BadRequestError
    denied = {"error": {"code": 403, "message": "Permission denied.", "status": "PERMISSION_DENIED"}}
    assert isinstance(error_from_response(403, denied), BadKeyError)

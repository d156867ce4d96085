"""Fetching users' files: PTB's getFile and file URL against the Bot API emulator, and Slack's
``url_private_download`` with the bot token against the Slack emulator, with the real test media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot

from adapters.slack.files import download, download_all, event_files, resolve
from adapters.telegram.media import MediaFile, fetch, fetch_all
from bot.domain import AttachmentProblem
from tests.fakes.slack import BOT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import SlackEmulator, message_event
from tests.fakes.telegram import BOT_TOKEN, Fault, TelegramEmulator

MEDIA = Path(__file__).parents[2] / "media"
MB = 1024 * 1024


def media(name: str) -> bytes:
    return (MEDIA / name).read_bytes()


@pytest.fixture
async def tg() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
async def bot(tg: TelegramEmulator) -> AsyncIterator[Bot]:
    async with Bot(BOT_TOKEN, base_url=f"{tg.base_url}/bot", base_file_url=f"{tg.base_url}/file/bot") as bot:
        yield bot


def downloads(tg: TelegramEmulator) -> list[str]:
    return [str(call.params["path"]) for call in tg.calls if call.method == "file"]


async def test_telegram_files_are_fetched_with_their_bytes_type_and_marker(
    tg: TelegramEmulator, bot: Bot
) -> None:
    voice, pdf = media("voice.ogg"), media("report.pdf")
    voice_id = tg.add_file(voice, folder="voice", suffix="oga").file_id
    pdf_id = tg.add_file(pdf, folder="documents", suffix="pdf").file_id
    files = [
        MediaFile(voice_id, "audio/ogg", "[voice note]"),
        MediaFile(pdf_id, "application/pdf", "[PDF r.pdf]", "r.pdf"),
    ]
    first, second = await fetch_all(bot, files, 20 * MB)
    assert (first.data, first.mime_type, first.placeholder) == (voice, "audio/ogg", "[voice note]")
    assert first.size == len(voice)
    assert (second.data, second.name, second.problem) == (pdf, "r.pdf", None)
    assert len(downloads(tg)) == 2


async def test_a_file_declared_over_the_limit_is_not_downloaded(tg: TelegramEmulator, bot: Bot) -> None:
    entry = tg.add_file(media("video.mp4"), folder="videos", suffix="mp4")
    got = await fetch(bot, MediaFile(entry.file_id, "video/mp4", "[video]", size=len(entry.data)), 1000)
    assert (got.problem, got.data, got.size) == (AttachmentProblem.TOO_LARGE, b"", len(entry.data))
    assert not tg.calls_to("getFile") and not downloads(tg)
    # No size in the message: getFile's size decides, still before any download.
    got = await fetch(bot, MediaFile(entry.file_id, "video/mp4", "[video]"), 1000)
    assert got.problem is AttachmentProblem.TOO_LARGE and not downloads(tg)


async def test_telegrams_own_20_mb_refusal_is_too_large(tg: TelegramEmulator, bot: Bot) -> None:
    entry = tg.add_file(b"", folder="videos", suffix="mp4", declared_size=25 * MB)
    got = await fetch(bot, MediaFile(entry.file_id, "video/mp4", "[video]"), 50 * MB)
    assert got.problem is AttachmentProblem.TOO_LARGE
    [call] = tg.calls_to("getFile")
    assert call.status == 400 and not downloads(tg)


async def test_a_failed_telegram_download_is_unavailable(tg: TelegramEmulator, bot: Bot) -> None:
    entry = tg.add_file(media("photo1.jpg"))
    tg.fail("getFile", Fault.bad_request("Bad Request: wrong file_id or the file is temporarily unavailable"))
    got = await fetch(bot, MediaFile(entry.file_id, "image/jpeg", "[photo]"), 20 * MB)
    assert (got.problem, got.data, got.placeholder) == (AttachmentProblem.UNAVAILABLE, b"", "[photo]")
    entry.link_expired = True  # getFile answers, the file URL then says 404
    got = await fetch(bot, MediaFile(entry.file_id, "image/jpeg", "[photo]"), 20 * MB)
    assert got.problem is AttachmentProblem.UNAVAILABLE


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_slack_files_are_downloaded_with_the_bot_token(
    slack: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    pdf = slack.add_file(media("report.pdf"), "report.pdf", "application/pdf", filetype="pdf")
    snippet = slack.add_file(b"print('hi')\n", "hello.py", "text/x-python", filetype="python", mode="snippet")
    notes = slack.add_file(media("notes.md"), "notes.md", "text/markdown", filetype="markdown")
    event = message_event("", channel="D1", user="U1", subtype="file_share", files=[pdf, snippet, notes])
    got = await download_all(session, SLACK_TOKEN, event_files(event), 20 * MB)
    assert [(a.mime_type, a.placeholder, a.data) for a in got] == [
        ("application/pdf", "[PDF report.pdf]", media("report.pdf")),
        ("text/plain", "[snippet hello.py]", b"print('hi')\n"),  # snippets are text
        ("text/markdown", "[file notes.md]", media("notes.md")),
    ]
    assert [status for _, status in slack.downloads] == [200, 200, 200]


async def test_without_the_right_token_slack_redirects_to_sign_in_and_the_file_is_unavailable(
    slack: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    info = slack.add_file(media("picture.png"), "picture.png", "image/png")
    [file] = event_files({"files": [info]})
    got = await download(session, "xoxb-wrong", file, 20 * MB)
    assert (got.problem, got.data) == (AttachmentProblem.UNAVAILABLE, b"")
    assert slack.downloads == [(info["id"], 302)]
    slack.delete_file(info["id"])
    got = await download(session, SLACK_TOKEN, file, 20 * MB)
    assert got.problem is AttachmentProblem.UNAVAILABLE and slack.downloads[-1][1] == 404


async def test_slack_sizes_are_checked_before_and_while_downloading(
    slack: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    big = slack.add_file(media("video.mp4"), "video.mp4", "video/mp4")
    [file] = event_files({"files": [big]})
    got = await download(session, SLACK_TOKEN, file, 1000)
    assert (got.problem, got.size) == (AttachmentProblem.TOO_LARGE, len(media("video.mp4")))
    assert not slack.downloads  # declared too large: never fetched
    lying = slack.add_file(media("video.mp4"), "clip.mp4", "video/mp4", declared_size=10)
    [file] = event_files({"files": [lying]})
    got = await download(session, SLACK_TOKEN, file, 1000)
    assert got.problem is AttachmentProblem.TOO_LARGE and got.data == b""
    external = slack.add_file(b"", "doc.gdoc", "application/vnd.google-apps.document", mode="external")
    [file] = event_files({"files": [external]})
    assert (await download(session, SLACK_TOKEN, file, 1000)).problem is AttachmentProblem.UNAVAILABLE


async def test_a_slack_connect_stub_is_looked_up_with_files_info(
    slack: SlackEmulator, session: aiohttp.ClientSession
) -> None:
    client = AsyncWebClient(token=SLACK_TOKEN, base_url=slack.api_url, session=session)
    info = slack.add_file(media("table.csv"), "table.csv", "text/csv", filetype="csv")
    missing = slack.connect_stub({"id": "F0MISSING"})
    stubs = event_files({"files": [slack.connect_stub(info), missing]})
    assert all(stub.check_info and not stub.url for stub in stubs)
    found, gone = await resolve(client, stubs)
    assert (found.url, found.mime_type) == (info["url_private_download"], "text/csv")
    assert found.placeholder == "[file table.csv]"
    assert gone == stubs[1]  # files.info refused: reported unavailable when downloaded
    got = await download_all(session, SLACK_TOKEN, [found, gone], 20 * MB)
    assert got[0].data == media("table.csv") and got[1].problem is AttachmentProblem.UNAVAILABLE
    assert [call.method for call in slack.calls] == ["files.info", "files.info"]

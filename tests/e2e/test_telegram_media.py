"""``gembot run`` against the Bot API and Gemini emulators: the files users send on Telegram reach Gemini.

Real media (tests/media) go through getFile and the file URL, then into the Gemini request; an album is
answered once; a file over ``media.max_bytes`` is never downloaded; a failed download is still answered.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio

from bot import i18n
from tests.conftest import API_KEY
from tests.e2e.test_telegram import Gembot, answers, start_gembot, stop_gembot
from tests.fakes.gemini import GeminiEmulator, Reply
from tests.fakes.telegram import BOT_TOKEN, Fault, TelegramEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MEDIA = Path(__file__).parents[1] / "media"
MB = 1024 * 1024
_ids = itertools.count(30_000)

# The media gate's notices for the files these tests do not let through, as i18n keys with their values.
TOO_LARGE_NOTICE: Final = ("media_too_large", {"name": "film.mp4", "size": "25.0 MB", "limit": "20MB"})
UNAVAILABLE_NOTICE: Final = ("media_unavailable", {"name": "report.pdf"})


def media(name: str) -> bytes:
    return (MEDIA / name).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline_parts(gemini: GeminiEmulator) -> list[list[dict[str, Any]]]:
    """The inlineData of the newest user content of every request so far (one list per request)."""
    found = []
    for request in gemini.requests:
        parts = request.body["contents"][-1]["parts"]
        found.append([p["inlineData"] for p in parts if "inlineData" in p])
    return found


def downloads(tg: TelegramEmulator) -> list[str]:
    return [str(call.params["path"]) for call in tg.calls if call.method == "file"]


def assert_notice(texts: list[str], notice: tuple[str, dict[str, Any]]) -> None:
    key, values = notice
    assert i18n.text("en", key, **values) in texts


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gembot]:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path_factory.mktemp("media"), gemini, tg)
        yield bot
        log = await stop_gembot(bot)
        assert BOT_TOKEN not in log and BOT_TOKEN.split(":", 1)[1] not in log
        assert "Traceback" not in log, log
        for name in ("voice.ogg", "report.pdf", "photo1.jpg"):
            assert b64(media(name))[:64] not in log  # media bytes never reach the log


@pytest.fixture
def tg(bot: Gembot) -> TelegramEmulator:
    bot.gemini.reset()
    bot.tg.calls.clear()
    return bot.tg


def private(tg: TelegramEmulator, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    user = tg.user(next(_ids), name)
    return user, tg.private_chat(user)


async def test_a_voice_note_reaches_gemini_as_ogg_audio(tg: TelegramEmulator, bot: Gembot) -> None:
    ann, chat = private(tg, "Ann")
    voice = media("voice.ogg")
    tg.send_media(chat, ann, "voice", voice)
    assert len(await answers(tg, chat["id"], 1)) == 1
    [request] = bot.gemini.requests
    assert inline_parts(bot.gemini) == [[{"mimeType": "audio/ogg", "data": b64(voice)}]]
    texts = [p["text"] for p in request.body["contents"][-1]["parts"] if "text" in p]
    assert all(not t.strip() for t in texts)  # no prompt put in the user's mouth
    [path] = downloads(tg)
    assert path.startswith("voice/")


async def test_an_album_of_three_photos_is_answered_once_with_three_parts(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    bea, chat = private(tg, "Bea")
    photos = [media(f"photo{n}.jpg") for n in (1, 2, 3)]
    tg.send_album(chat, bea, [("photo", p) for p in photos], caption="Which one is sharpest?")
    tg.send(chat, bea, "and the second?")  # sent right after: answered after the album, in order
    assert await answers(tg, chat["id"], 2) == ["echo: Which one is sharpest?", "echo: and the second?"]
    await asyncio.sleep(1.5)  # longer than the album's quiet window: no further answer comes
    assert len(tg.texts(chat["id"])) == 2
    assert inline_parts(bot.gemini) == [[{"mimeType": "image/jpeg", "data": b64(p)} for p in photos], []]
    assert tg.bot_messages(chat["id"])[0].reply_to is None  # a private chat: no quote
    history = bot.gemini.requests[-1].body["contents"]
    assert "[photo] [photo] [photo]" in history[0]["parts"][0]["text"]


async def test_an_album_in_a_group_quotes_its_first_part(tg: TelegramEmulator, bot: Gembot) -> None:
    cid = tg.user(next(_ids), "Cid")
    group = tg.group(-next(_ids), "Team")
    parts = [("photo", media("photo1.jpg")), ("document", media("report.pdf"))]
    messages = tg.send_album(group, cid, parts, caption="@gembot_test_bot compare these")
    await answers(tg, group["id"], 1)
    await asyncio.sleep(1.5)
    [answer] = tg.bot_messages(group["id"])
    assert answer.reply_to == messages[0]["message_id"]
    [[photo, pdf]] = inline_parts(bot.gemini)
    assert photo["data"] == b64(media("photo1.jpg")) and pdf["data"] == b64(media("report.pdf"))


@pytest.mark.parametrize(
    ("kind", "name", "fields", "mime_type"),
    [
        ("document", "report.pdf", {"file_name": "r.pdf", "mime_type": "application/pdf"}, "application/pdf"),
        ("document", "table.csv", {"file_name": "table.csv", "mime_type": "text/csv"}, "text/csv"),
        ("sticker", "sticker.webp", {}, "image/webp"),
        # Telegram's audio/mpeg goes to Gemini in Gemini's own spelling.
        ("audio", "audio.mp3", {"file_name": "audio.mp3", "mime_type": "audio/mpeg"}, "audio/mp3"),
        ("video_note", "video_note.mp4", {}, "video/mp4"),
    ],
)  # fmt: skip
async def test_documents_stickers_audio_and_video_notes_reach_gemini(
    tg: TelegramEmulator, bot: Gembot, kind: str, name: str, fields: dict[str, str], mime_type: str
) -> None:
    dee, chat = private(tg, "Dee")
    data = media(name)
    tg.send_media(chat, dee, kind, data, caption="What is this?", **fields)
    assert await answers(tg, chat["id"], 1) == ["echo: What is this?"]
    assert inline_parts(bot.gemini) == [[{"mimeType": mime_type, "data": b64(data)}]]


async def test_a_question_in_reply_to_a_photo_sends_that_photo(tg: TelegramEmulator, bot: Gembot) -> None:
    eve, chat = private(tg, "Eve")
    photo = tg.send_media(chat, eve, "photo", media("photo2.jpg"))
    await answers(tg, chat["id"], 1)
    tg.send(chat, eve, "what is in this picture?", reply_to=photo)
    assert (await answers(tg, chat["id"], 2))[1] == "echo: what is in this picture?"
    assert inline_parts(bot.gemini)[-1] == [{"mimeType": "image/jpeg", "data": b64(media("photo2.jpg"))}]


async def test_a_file_over_max_bytes_is_not_downloaded_and_answered_once(
    tg: TelegramEmulator, bot: Gembot
) -> None:
    fay, chat = private(tg, "Fay")
    tg.send_media(chat, fay, "video", b"", file_name="film.mp4", mime_type="video/mp4", declared_size=25 * MB)
    tg.send(chat, fay, "still there?")
    texts = await answers(tg, chat["id"], 2)
    await asyncio.sleep(0.3)
    assert len(tg.texts(chat["id"])) == 2 and texts[1] == "echo: still there?"
    assert not downloads(tg) and not tg.calls_to("getFile")
    assert_notice(texts[:1], TOO_LARGE_NOTICE)


async def test_a_failed_download_is_answered_and_the_chat_goes_on(tg: TelegramEmulator, bot: Gembot) -> None:
    gil, chat = private(tg, "Gil")
    tg.fail("getFile", Fault.bad_request("Bad Request: wrong file_id or the file is temporarily unavailable"))
    tg.send_media(chat, gil, "document", media("report.pdf"), file_name="report.pdf", caption="Summarise")
    tg.send(chat, gil, "and now?")
    texts = await answers(tg, chat["id"], 2)
    await asyncio.sleep(0.3)
    assert len(tg.texts(chat["id"])) == 2 and texts[1] == "echo: and now?"
    assert not downloads(tg)
    assert not [r for r in bot.gemini.requests if b64(media("report.pdf"))[:64] in str(r.body)]
    assert_notice(texts[:1], UNAVAILABLE_NOTICE)


async def test_an_animated_sticker_gets_the_unsupported_notice(tg: TelegramEmulator, bot: Gembot) -> None:
    hal, chat = private(tg, "Hal")
    tg.send_media(chat, hal, "sticker", b"\x1f\x8b tgs", animated=True)
    [notice] = await answers(tg, chat["id"], 1)
    assert notice == i18n.text("en", "unsupported")
    assert not bot.gemini.requests and not downloads(tg)


async def test_with_media_off_files_get_the_unsupported_notice(tmp_path: Path) -> None:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path, gemini, tg, sections={"media": {"enabled": False}})
        try:
            ivy = tg.user(next(_ids), "Ivy")
            chat = tg.private_chat(ivy)
            tg.send_media(chat, ivy, "voice", media("voice.ogg"))
            tg.send_media(chat, ivy, "photo", media("photo1.jpg"), caption="what is it?")
            assert await answers(tg, chat["id"], 2) == [i18n.text("en", "unsupported")] * 2
            assert not gemini.requests and not downloads(tg)
        finally:
            await stop_gembot(bot)


async def test_a_large_pdf_goes_through_the_files_api_stays_for_follow_ups_and_forget_deletes_it(
    tmp_path: Path,
) -> None:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path, gemini, tg, sections={"media": {"inline_max_bytes": "8KB"}})
        try:
            kim = tg.user(next(_ids), "Kim")
            chat = tg.private_chat(kim)
            tg.send_media(
                chat, kim, "document", media("report.pdf"), file_name="report.pdf", caption="Summarise"
            )
            await answers(tg, chat["id"], 1)
            tg.send(chat, kim, "and what does page 3 say?")
            await answers(tg, chat["id"], 2)
            [(kind, part)] = gemini.media(0)
            assert kind == "fileData" and part["mimeType"] == "application/pdf"
            assert gemini.media(1) == [(kind, part)]  # the follow-up still carries the file
            assert gemini.user_texts(1)[0].endswith("report.pdf] Summarise")  # a marker, not the bytes
            assert len(gemini.files.names()) == 1
            tg.send(chat, kim, "/forget")
            await answers(tg, chat["id"], 3)
            await tg.wait_for(lambda: not gemini.files.names(), within=10)  # polled
            assert len(gemini.files.deleted) == 1
        finally:
            await stop_gembot(bot)


async def test_an_album_cut_short_by_a_crash_is_followed_up_once_after_the_restart(tmp_path: Path) -> None:
    async with TelegramEmulator() as tg, GeminiEmulator(api_key=API_KEY) as gemini:
        bot = await start_gembot(tmp_path, gemini, tg)
        jon = tg.user(next(_ids), "Jon")
        chat = tg.private_chat(jon)
        gemini.script(Reply(text="too late", latency=30))
        messages = tg.send_album(chat, jon, [("photo", media(f"photo{n}.jpg")) for n in (1, 2, 3)])
        await tg.wait_for(lambda: gemini.requests, within=15)  # recorded, acknowledged, being answered
        bot.process.send_signal(signal.SIGKILL)
        await bot.process.wait()
        gemini.reset()
        restarted = await start_gembot(tmp_path, gemini, tg)
        try:
            [notice] = await answers(tg, chat["id"], 1)
            await asyncio.sleep(1.5)
            assert tg.texts(chat["id"]) == [notice] and notice == i18n.text("en", "resend")
            [message] = tg.bot_messages(chat["id"])
            assert message.reply_to == messages[0]["message_id"]  # the album's first part names it
            assert not gemini.requests  # the album was not answered again after the restart
        finally:
            await stop_gembot(restarted)

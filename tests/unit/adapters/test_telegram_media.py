"""Telegram messages with files -> the files to fetch, their claimed types and history markers; albums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from adapters.telegram.albums import Albums
from adapters.telegram.media import MediaFile, pick_photo
from adapters.telegram.normalize import BotIdentity, Normalized, normalize
from bot.config import MediaSettings, TelegramSettings
from bot.domain import MessageKind
from tests.fakes.telegram import TelegramEmulator

MEDIA = Path(__file__).parents[2] / "media"
ME = BotIdentity(id=7012345678, username="gembot_test_bot")
tg = TelegramEmulator()
ANN = tg.user(111, "Ann", "ann", "en")
CHAT = tg.private_chat(ANN)
SETTINGS = TelegramSettings()


def media(name: str) -> bytes:
    return (MEDIA / name).read_bytes()


def normalized(message: dict[str, Any], settings: MediaSettings | None = None) -> Normalized:
    result = normalize(Update.de_json({"update_id": 1, "message": message}, None), ME, SETTINGS, settings)
    assert result is not None
    return result


def one_file(message: dict[str, Any]) -> MediaFile:
    result = normalized(message)
    assert result.incoming.kind is MessageKind.TEXT
    [file] = result.files
    return file


@pytest.mark.parametrize(
    ("kind", "name", "claim", "mime_type", "placeholder"),
    [
        ("voice", "voice.ogg", None, "audio/ogg", "[voice note]"),
        ("audio", "audio.mp3", "audio/mpeg", "audio/mpeg", "[audio audio.mp3]"),
        ("video", "video.mp4", "video/mp4", "video/mp4", "[video video.mp4]"),
        ("video_note", "video_note.mp4", None, "video/mp4", "[video note]"),
        ("document", "report.pdf", "application/pdf", "application/pdf", "[PDF report.pdf]"),
        ("document", "table.csv", "text/csv", "text/csv", "[file table.csv]"),
        ("document", "notes.md", None, "", "[file notes.md]"),
        ("document", "picture.png", "image/png", "image/png", "[image picture.png]"),
        ("sticker", "sticker.webp", None, "image/webp", "[sticker]"),
        ("photo", "photo1.jpg", None, "image/jpeg", "[photo]"),
    ],
)
def test_each_kind_of_file_is_listed_with_telegrams_claim_and_a_marker(
    kind: str, name: str, claim: str | None, mime_type: str, placeholder: str
) -> None:
    data = media(name)
    named = kind in ("audio", "video", "document")
    fields = {"file_name": name if named else None, "mime_type": claim}
    file = one_file(tg.media_message(CHAT, ANN, kind, data, **fields))
    assert (file.mime_type, file.placeholder, file.size) == (mime_type, placeholder, len(data))
    assert file.name == (name if named else "")


def test_the_caption_is_the_text_and_no_caption_sends_the_file_as_it_is() -> None:
    voice = normalized(tg.media_message(CHAT, ANN, "voice", media("voice.ogg")))
    assert voice.incoming.text == "" and len(voice.files) == 1
    pdf = tg.media_message(CHAT, ANN, "document", media("report.pdf"), caption="Summarise page 3")
    assert normalized(pdf).incoming.text == "Summarise page 3"


def test_animated_stickers_and_animations_are_unsupported() -> None:
    sticker = normalized(tg.media_message(CHAT, ANN, "sticker", b"tgs", animated=True))
    assert sticker.incoming.kind is MessageKind.UNSUPPORTED and not sticker.files
    gif = normalized(tg.media_message(CHAT, ANN, "animation", media("video.mp4"), file_name="a.mp4"))
    assert gif.incoming.kind is MessageKind.UNSUPPORTED and not gif.files


def test_with_media_off_every_file_is_unsupported() -> None:
    off = MediaSettings(enabled=False)
    for kind, name in (("photo", "photo1.jpg"), ("voice", "voice.ogg")):
        result = normalized(tg.media_message(CHAT, ANN, kind, media(name), caption="hi"), off)
        assert result.incoming.kind is MessageKind.UNSUPPORTED and not result.files


def test_a_file_over_the_limit_is_still_listed_with_its_declared_size() -> None:
    file = one_file(tg.media_message(CHAT, ANN, "video", b"", declared_size=30 * 1024**2))
    assert file.size == 30 * 1024**2  # the fetch marks it too large without downloading it


def test_the_largest_photo_size_within_the_limit_is_chosen() -> None:
    message = tg.user_message(CHAT, ANN, None, None, None, [b"s", b"m" * 10, b"l" * 100], None, None, None)
    assert one_file(message).size == 100
    capped = normalized(message, MediaSettings(max_bytes=50))
    assert capped.files[0].size == 10
    assert normalized(message, MediaSettings(max_bytes=1)).files[0].size == 1  # none fits: the smallest
    assert pick_photo((), 10) is None


def test_a_question_in_reply_to_a_file_asks_about_that_file() -> None:
    pdf = tg.media_message(CHAT, ANN, "document", media("report.pdf"), file_name="report.pdf")
    reply = tg.user_message(CHAT, ANN, "what does page 3 say?", pdf, None, None, None, None, None)
    result = normalized(reply)
    assert result.incoming.text == "what does page 3 say?"
    assert [f.placeholder for f in result.files] == ["[file report.pdf]"]
    assert result.album is None
    bare = tg.user_message(CHAT, ANN, "  ", pdf, None, None, None, None, None)
    assert not normalized(bare).files


def test_album_parts_name_their_group() -> None:
    parts = [("photo", media(f"photo{n}.jpg")) for n in (1, 2, 3)]
    messages = [tg.media_message(CHAT, ANN, k, d, media_group_id="g1") for k, d in parts]
    assert {normalized(m).album for m in messages} == {"g1"}


async def test_an_album_is_its_first_part_with_every_file_in_message_order() -> None:
    messages = [
        tg.media_message(CHAT, ANN, "photo", media(f"photo{n}.jpg"), media_group_id="g2", caption=caption)
        for n, caption in ((1, "Which is sharpest?"), (2, None), (3, "the last one is mine"))
    ]
    first, second, third = (normalized(m) for m in messages)
    albums = Albums(quiet=0.05)
    key = (CHAT["id"], "g2")
    albums.start(key, 10, first)
    albums.join(key, 12, third)  # parts may arrive out of order
    albums.join(key, 11, second)
    albums.join(key, 11, second)  # delivered twice: counted once
    album = await albums.gather(key, first)
    assert album.incoming.event_id == first.incoming.event_id
    assert album.incoming.text == "Which is sharpest?\nthe last one is mine"
    assert [f.file_id for f in album.files] == [f.files[0].file_id for f in (first, second, third)]
    assert key not in albums and len(albums) == 0

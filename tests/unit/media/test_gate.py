"""The media gate: every file problem stops the message with its notice, in the sender's language."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.config import MediaSettings
from bot.domain import Attachment, AttachmentProblem, Incoming, NoticeKind, Platform
from bot.guards.media import checked_media
from bot.guards.steps import Rejection
from bot.i18n import Language

MEDIA = Path(__file__).resolve().parents[2] / "media"
SETTINGS = MediaSettings()


def message(*attachments: Attachment, text: str = "") -> Incoming:
    return Incoming(Platform.TELEGRAM, "c", "u", text, "e1", attachments=attachments)


def file(name: str, *, claim: str = "", placeholder: str = "[file]") -> Attachment:
    data = (MEDIA / name).read_bytes()
    return Attachment(mime_type=claim, data=data, placeholder=placeholder, name=name, size=len(data))


def rejected(result: Rejection | tuple[Attachment, ...]) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.notice is not None
    return result


def test_good_files_pass_typed_from_their_bytes() -> None:
    voice = replace(file("voice.ogg"), name="", placeholder="[voice note]")
    checked = checked_media(
        message(voice, file("report.pdf", claim="application/octet-stream")), SETTINGS, "en"
    )
    assert isinstance(checked, tuple)
    assert [a.mime_type for a in checked] == ["audio/ogg", "application/pdf"]
    assert [a.size for a in checked] == [len(voice.data), (MEDIA / "report.pdf").stat().st_size]


def test_a_message_without_files_passes_untouched() -> None:
    assert checked_media(message(text="hi"), SETTINGS, "en") == ()


def test_media_switched_off_is_told() -> None:
    stop = rejected(checked_media(message(file("picture.png")), MediaSettings(enabled=False), "en"))
    assert stop.outcome == "media_disabled"
    assert stop.notice is not None and "text" in stop.notice.text


def test_too_many_files_names_the_limit() -> None:
    photos = [file(f"photo{i}.jpg") for i in (1, 2, 3)]
    stop = rejected(checked_media(message(*photos), MediaSettings(max_files_per_message=2), "en"))
    assert stop.outcome == "media_too_many"
    assert stop.notice is not None and "3 files" in stop.notice.text and "at most 2" in stop.notice.text


def test_a_file_over_the_limit_names_the_limit_whether_declared_or_downloaded() -> None:
    declared = Attachment(
        "video/mp4", b"", "[video]", "holiday.mp4", 30 * 1024**2, AttachmentProblem.TOO_LARGE
    )
    stop = rejected(checked_media(message(declared), SETTINGS, "en"))
    assert stop.outcome == "media_too_large"
    assert stop.notice is not None
    assert "holiday.mp4" in stop.notice.text and "30.0 MB" in stop.notice.text and "20MB" in stop.notice.text
    downloaded = file("report.pdf")
    small = MediaSettings(max_bytes="8KB")
    stop = rejected(checked_media(message(downloaded), small, "zh"))
    assert stop.notice is not None and "8KB" in stop.notice.text and "太大" in stop.notice.text


def test_a_failed_download_asks_to_send_again() -> None:
    failed = Attachment("audio/ogg", b"", "[voice note]", "", 7000, AttachmentProblem.UNAVAILABLE)
    stop = rejected(checked_media(message(failed), SETTINGS, "en"))
    assert stop.outcome == "media_unavailable"
    assert stop.notice is not None and stop.notice.kind is NoticeKind.UNAVAILABLE
    assert "send it again" in stop.notice.text


def test_an_unsupported_type_names_what_is_accepted() -> None:
    blob = Attachment("application/zip", bytes(range(256)) * 8, "[file]", "archive.zip", 2048)
    for lang, accepted in (("en", "PDF"), ("zh", "PDF")):
        language: Language = lang  # type: ignore[assignment]
        stop = rejected(checked_media(message(blob), SETTINGS, language))
        assert stop.outcome == "media_unsupported"
        assert stop.notice is not None and stop.notice.kind is NoticeKind.UNSUPPORTED
        assert "archive.zip" in stop.notice.text and accepted in stop.notice.text
    gif = Attachment("image/gif", b"GIF89a" + bytes(64), "[image]", "anim.gif", 70)
    stop = rejected(checked_media(message(gif), SETTINGS, "en"))
    assert stop.notice is not None and "image/gif" in stop.notice.text and "JPEG" in stop.notice.text


def test_a_file_that_is_not_what_its_name_says_is_refused() -> None:
    stop = rejected(checked_media(message(file("not_a.pdf", claim="application/pdf")), SETTINGS, "en"))
    assert stop.outcome == "media_misnamed"
    assert stop.notice is not None and "not_a.pdf" in stop.notice.text and "image/png" in stop.notice.text


def test_one_bad_file_stops_the_whole_message() -> None:
    stop = rejected(checked_media(message(file("picture.png"), file("not_a.pdf")), SETTINGS, "en"))
    assert stop.outcome == "media_misnamed"

"""File types from the bytes of real files: signatures, text documents, and names that lie."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.media.detect import detect, looks_like_text
from bot.media.kinds import MediaFamily, documented, family_of

MEDIA = Path(__file__).resolve().parents[2] / "media"


@pytest.mark.parametrize(
    ("name", "mime", "family"),
    [
        ("voice.ogg", "audio/ogg", MediaFamily.AUDIO),
        ("audio.mp3", "audio/mp3", MediaFamily.AUDIO),
        ("photo1.jpg", "image/jpeg", MediaFamily.IMAGE),
        ("picture.png", "image/png", MediaFamily.IMAGE),
        ("sticker.webp", "image/webp", MediaFamily.IMAGE),
        ("video.mp4", "video/mp4", MediaFamily.VIDEO),
        ("video_note.mp4", "video/mp4", MediaFamily.VIDEO),
        ("report.pdf", "application/pdf", MediaFamily.PDF),
        ("table.csv", "text/csv", MediaFamily.TEXT),
        ("notes.md", "text/md", MediaFamily.TEXT),
    ],
)
def test_each_real_file_gets_the_type_gemini_documents(name: str, mime: str, family: MediaFamily) -> None:
    found = detect((MEDIA / name).read_bytes(), claim="application/octet-stream", name=name)
    assert (found.mime_type, found.family, found.misnamed) == (mime, family, False)


def test_the_bytes_decide_over_a_missing_or_generic_claim_and_no_name() -> None:
    voice = (MEDIA / "voice.ogg").read_bytes()
    assert detect(voice).mime_type == "audio/ogg"
    assert detect(voice, claim="application/octet-stream").mime_type == "audio/ogg"
    # A platform that claims the wrong type is overruled by the bytes.
    assert detect((MEDIA / "picture.png").read_bytes(), claim="image/jpeg").mime_type == "image/png"


def test_a_png_named_pdf_is_not_what_its_name_says() -> None:
    found = detect((MEDIA / "not_a.pdf").read_bytes(), claim="application/pdf", name="not_a.pdf")
    assert found.mime_type == "image/png"
    assert found.named is MediaFamily.PDF
    assert found.misnamed


def test_binary_bytes_named_as_text_are_misnamed_and_text_named_as_audio_too() -> None:
    assert detect((MEDIA / "picture.png").read_bytes(), name="notes.txt").misnamed
    assert detect(b"just some words\n", name="song.m4a").misnamed


def test_audio_and_video_containers_pass_for_each_other() -> None:
    # A video note or an MP4 holding only sound is no lie.
    assert not detect((MEDIA / "video.mp4").read_bytes(), name="recording.m4a").misnamed


@pytest.mark.parametrize(
    ("name", "claim", "mime"),
    [
        ("script.py", "", "text/x-python"),
        ("app.js", "", "text/javascript"),
        ("page.html", "", "text/html"),
        ("main.go", "", "text/plain"),
        ("", "", "text/plain"),
        ("snippet", "text/csv", "text/csv"),
        ("notes.txt", "text/markdown", "text/md"),
        ("data.json", "application/json", "text/plain"),
    ],
)
def test_text_documents_are_typed_by_claim_or_name_else_plain(name: str, claim: str, mime: str) -> None:
    found = detect("def f():\n    return '你好'\n".encode(), claim=claim, name=name)
    assert (found.mime_type, found.family) == (mime, MediaFamily.TEXT)


def test_bytes_that_are_neither_a_known_format_nor_text_are_not_taken() -> None:
    noise = bytes(range(256)) * 4
    assert not looks_like_text(noise)
    found = detect(noise, claim="application/octet-stream", name="blob.bin")
    assert found.family is None and found.mime_type == "application/octet-stream"
    # A specific claim is all there is to go on when the bytes say nothing; a type Gemini lacks stays out.
    assert detect(noise, claim="application/zip").family is None


def test_text_is_utf8_without_nul_and_a_character_cut_at_the_sample_edge_is_fine() -> None:
    assert looks_like_text("日本語のテキスト\n".encode())
    assert not looks_like_text("plain".encode("utf-16"))
    long = ("é" * 40_000).encode()  # 80,000 bytes: the 64 KB sample ends inside a character
    assert looks_like_text(long)
    assert not looks_like_text(b"")


def test_spellings_are_normalised_to_the_documented_ones() -> None:
    assert documented("audio/mpeg") == "audio/mp3"
    assert documented("Video/QuickTime; codecs=x") == "video/mov"
    assert documented("text/markdown") == "text/md"
    assert family_of("image/gif") is None
    assert family_of("application/pdf") is MediaFamily.PDF

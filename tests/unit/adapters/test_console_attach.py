"""The console's /attach: the path (quoted when it has spaces), the text, and the file as an adapter hands
one over."""

from __future__ import annotations

from pathlib import Path

from adapters.console import console_message, local_file, split_attach
from bot.domain import AttachmentProblem

MEDIA = Path(__file__).resolve().parents[2] / "media"


def test_the_path_and_the_text_are_split() -> None:
    assert split_attach("report.pdf what does page 3 say?") == ("report.pdf", "what does page 3 say?")
    assert split_attach('"my photo.png"   what is this?') == ("my photo.png", "what is this?")
    assert split_attach("'a b.csv'") == ("a b.csv", "")
    assert split_attach('"unclosed quote.pdf hi') == ('"unclosed', "quote.pdf hi")


def test_a_local_file_is_read_whole_or_marked_as_a_platform_would() -> None:
    found = local_file(str(MEDIA / "voice.ogg"), 20 * 1024**2)
    assert found.data == (MEDIA / "voice.ogg").read_bytes() and found.problem is None
    assert (found.name, found.placeholder, found.mime_type) == ("voice.ogg", "[file voice.ogg]", "")
    large = local_file(str(MEDIA / "report.pdf"), 1024)
    assert large.problem is AttachmentProblem.TOO_LARGE and large.data == b"" and large.size > 1024
    missing = local_file(str(MEDIA / "nowhere.pdf"), 1024)
    assert missing.problem is AttachmentProblem.UNAVAILABLE


async def test_attach_makes_one_message_with_the_file_and_other_lines_stay_as_they_were() -> None:
    message = await console_message(f"/attach {MEDIA / 'table.csv'} sum it", "op", "en", 1024**2)
    assert message.command is None and message.text == "sum it" and message.operator
    assert [a.name for a in message.attachments] == ["table.csv"]
    plain = await console_message("hello", "op", "en", 1024**2)
    assert plain.text == "hello" and plain.attachments == ()
    command = await console_message("/reset", "op", "en", 1024**2)
    assert command.command == "reset"

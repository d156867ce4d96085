"""``gembot console`` with ``/attach``: a local file sent as a platform sends one, through the Files API
when it is large, kept for the follow-up, refused with a notice when it is bad, erased by /forget."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.e2e.test_console import gembot, write_config
from tests.fakes.gemini import GeminiEmulator

pytestmark = pytest.mark.e2e

MEDIA = Path(__file__).resolve().parents[1] / "media"


async def test_attach_sends_files_keeps_them_for_follow_ups_and_forget_deletes_them(
    gemini: GeminiEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gemini.base_url, media={"inline_max_bytes": "8KB"})
    spaced = tmp_path / "my photo.png"
    spaced.write_bytes((MEDIA / "picture.png").read_bytes())
    lines = [
        f"/attach {MEDIA / 'report.pdf'} summarise it",
        "and what does page 3 say?",
        f'/attach "{spaced}" what is this?',
        f"/attach {MEDIA / 'not_a.pdf'}",
        f"/attach {tmp_path / 'missing.pdf'} hello",
    ]
    stdin = ("\n".join(lines) + "\n").encode()
    env = {"GEMINI_API_KEY": API_KEY}
    status, out, err = await gembot("console", "--config", str(config), stdin=stdin, env=env)
    assert status == 0, err
    shown = out.splitlines()
    assert shown[:3] == ["echo: summarise it", "echo: and what does page 3 say?", "echo: what is this?"]
    assert "not_a.pdf is not what its name says" in shown[3]
    assert "missing.pdf" in shown[4] and "send it again" in shown[4]

    [(kind, part)] = gemini.media(0)
    assert kind == "fileData" and part["mimeType"] == "application/pdf"
    assert gemini.media(1) == [(kind, part)]  # the follow-up carries the file
    assert gemini.media(2)[-1][0] == "inlineData" and gemini.media(2)[-1][1]["mimeType"] == "image/png"
    assert len(gemini.requests) == 3 and len(gemini.files.names()) == 1

    status, out, err = await gembot("console", "--config", str(config), stdin=b"/forget\n", env=env)
    assert status == 0, err
    assert gemini.files.names() == set() and len(gemini.files.deleted) == 1

"""Files leave nothing behind: erased exchanges take their kept bytes out of the SQLite files, and no
file's bytes reach the logs."""

from __future__ import annotations

import base64
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import App
from bot.domain import Attachment
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming
from tests.integration.privacy.test_privacy import file_bytes

MARKER = b"MEDIASECRET-7f3a9c"


def document(name: str) -> Attachment:
    data = b"item,total\n" + MARKER + b",42\n" + b"filler,1\n" * 200
    return Attachment("text/csv", data, f"[{name}]", name, len(data))


@pytest.mark.parametrize("erase", ["forget", "reset", "purge"])
async def test_erasing_takes_the_kept_bytes_out_of_the_database_files(
    make_settings: Any, gemini: Emulator, db_path: Any, erase: str
) -> None:
    clock = FakeClock(datetime.now(UTC))
    app = await App.create(make_settings(), clock=clock)
    try:
        answer_text(await collect(app, replace(incoming("totals?"), attachments=(document("sales.csv"),))))
        assert MARKER in file_bytes(db_path)  # the check below can see the bytes when they are there
        if erase == "purge":
            clock.advance(timedelta(hours=25))
            await app.purge()
        else:
            await collect(app, incoming(command=erase))
    finally:
        await app.aclose()
    assert MARKER not in file_bytes(db_path)


async def test_no_file_bytes_reach_the_logs(
    make_settings: Any, gemini: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    app = await App.create(make_settings(media={"inline_max_bytes": "1KB"}))
    gemini.files.fail_uploads = 10
    try:
        with caplog.at_level(logging.DEBUG):
            await collect(app, replace(incoming("a"), attachments=(document("one.csv"),)))
            gemini.files.fail_uploads = 0
            gemini.script(ErrorReply.bad_request("The document has no pages."))
            await collect(app, replace(incoming("b"), attachments=(document("two.csv"),)))
    finally:
        await app.aclose()
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "files.upload_failed" in logged  # the logs were captured
    assert MARKER.decode() not in logged
    assert base64.b64encode(document("x").data).decode()[:24] not in logged

"""Files through the engine on a real database and the Gemini emulator: inline or through the Files API,
kept for follow-ups, erased with their exchanges (remote copies included), every bad input answered."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.clock import Clock, SystemClock
from bot.domain import Attachment, AttachmentProblem, Incoming, Notice, NoticeKind
from bot.engine import longest_answer
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply, Hang, Reply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, eventually, incoming, terminal
from tests.services import QueryRows

MEDIA = Path(__file__).resolve().parents[2] / "media"
# report.pdf (17 KB) is over this and goes through the Files API; the photos (6 KB) go inline.
SMALL_INLINE = {"media": {"inline_max_bytes": "8KB"}}

AppMaker = Callable[..., Any]


@pytest.fixture
async def make_app(make_settings: Any) -> AsyncIterator[AppMaker]:
    apps: list[App] = []

    async def factory(clock: Clock | None = None, **overrides: Any) -> App:
        config = {**SMALL_INLINE, **overrides}
        app = await App.create(make_settings(**config), clock=clock or FakeClock(datetime.now(UTC)))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


def attached(name: str, *, placeholder: str = "", claim: str = "") -> Attachment:
    data = (MEDIA / name).read_bytes()
    return Attachment(claim, data, placeholder or f"[{name}]", name, len(data))


def with_files(text: str, *files: Attachment, **kwargs: Any) -> Incoming:
    return replace(incoming(text, **kwargs), attachments=files)


def notice(events: list[Any]) -> Notice:
    end = terminal(events)
    assert isinstance(end, Notice), end
    return end


async def test_a_pdf_over_the_inline_limit_goes_through_the_files_api_and_stays_for_the_follow_up(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    pdf = attached("report.pdf", placeholder="[PDF report.pdf]", claim="application/octet-stream")
    assert answer_text(await collect(app, with_files("Summarise this", pdf)))
    [(kind, part)] = gemini.media(0)
    assert kind == "fileData" and part["mimeType"] == "application/pdf"
    held = gemini.files.find(part["fileUri"])
    assert held is not None and held.data == pdf.data

    answer_text(await collect(app, incoming("and what does page 3 say?")))
    assert gemini.media(1) == [("fileData", part)]  # the follow-up still carries the file
    assert gemini.user_texts(1) == ["[PDF report.pdf] Summarise this", "and what does page 3 say?"]
    assert gemini.files.uploads == 1  # a reference, not a second upload
    [(file_name, data, mime, size)] = query_rows("SELECT file_name, data, mime_type, size FROM media")
    assert file_name == held.name and data is None and (mime, size) == ("application/pdf", len(pdf.data))


async def test_small_files_go_inline_and_their_kept_bytes_are_sent_again(
    make_app: AppMaker, gemini: Emulator
) -> None:
    app = await make_app()
    voice = attached("voice.ogg", placeholder="[voice note]", claim="audio/ogg")
    assert answer_text(await collect(app, with_files("", voice)))
    [(kind, part)] = gemini.media(0)
    assert kind == "inlineData" and part["mimeType"] == "audio/ogg"
    assert base64.b64decode(part["data"]) == voice.data
    # No canned prompt in the user's mouth: the voice note is the whole message.
    assert [list(p) for p in gemini.requests[0].body["contents"][-1]["parts"]] == [["inlineData"]]
    answer_text(await collect(app, incoming("say it again in French")))
    assert gemini.media(1) == [("inlineData", part)]
    assert gemini.files.uploads == 0


async def test_an_album_is_one_message_with_its_parts_in_order(make_app: AppMaker, gemini: Emulator) -> None:
    app = await make_app()
    photos = [attached(f"photo{i}.jpg", placeholder="[photo]") for i in (1, 2, 3)]
    assert answer_text(await collect(app, with_files("which is sharpest?", *photos)))
    parts = gemini.media(0)
    assert [base64.b64decode(p["data"]) for _, p in parts] == [p.data for p in photos]


async def test_a_video_waits_until_active(make_app: AppMaker, gemini: Emulator) -> None:
    gemini.files.processing_seconds = 0.2
    app = await make_app()
    video = attached("video.mp4", placeholder="[video]")
    assert answer_text(await collect(app, with_files("what happens?", video)))
    [(kind, part)] = gemini.media(0)
    assert kind == "fileData" and part["mimeType"] == "video/mp4"


async def test_an_expired_reference_is_dropped_with_a_note(make_app: AppMaker, gemini: Emulator) -> None:
    clock = FakeClock(datetime.now(UTC))
    app = await make_app(clock, storage={"retention": "72h"})
    pdf = attached("report.pdf", placeholder="[PDF report.pdf]")
    answer_text(await collect(app, with_files("read this", pdf)))
    clock.advance(timedelta(hours=49))
    answer_text(await collect(app, incoming("what was its title?")))
    assert gemini.media(1) == []
    assert gemini.user_texts(1)[0] == "[PDF report.pdf] read this [report.pdf is no longer available]"


async def test_forget_deletes_the_uploaded_copies_and_the_kept_bytes(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    await collect(app, with_files("one", attached("report.pdf")))
    await collect(app, with_files("two", attached("table.csv")))
    await collect(app, with_files("three", attached("report.pdf"), user="someone-else"))
    assert len(gemini.files.names()) == 2
    assert len(query_rows("SELECT id FROM media")) == 3
    await collect(app, incoming(command="forget"))
    assert app.janitor is not None
    assert await app.janitor.sweep() == 1
    assert len(gemini.files.deleted) == 1 and len(gemini.files.names()) == 1
    assert query_rows("SELECT name FROM media") == [("report.pdf",)]  # the other user's stays
    assert query_rows("SELECT id FROM media_deletions") == []


async def test_a_copy_whose_answer_never_ends_is_deleted_after_any_answer_could_have(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    clock = FakeClock(datetime.now(UTC))
    app = await make_app(clock)
    gemini.script(Hang())
    answering = asyncio.ensure_future(collect(app, with_files("read this", attached("report.pdf"))))
    try:
        await eventually(lambda: len(gemini.requests) == 1)  # uploaded and asked; the process dies here
        [name] = gemini.files.names()
        assert query_rows("SELECT file_name FROM media_deletions") == [(name,)]
        again = await make_app(clock)  # the restart, on the same database
        assert again.janitor is not None and await again.janitor.sweep() == 0  # its answer may still run
        clock.advance(longest_answer(again.settings) + timedelta(seconds=1))
        assert await again.janitor.sweep() == 1
        assert gemini.files.names() == set() and gemini.files.deleted == [name]
    finally:
        answering.cancel()
        await asyncio.gather(answering, return_exceptions=True)


async def test_a_kept_copy_leaves_the_deletion_queue_with_its_stored_exchange(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    answer_text(await collect(app, with_files("read this", attached("report.pdf"))))
    [name] = gemini.files.names()
    assert query_rows("SELECT file_name FROM media") == [(name,)]
    assert query_rows("SELECT id FROM media_deletions") == []
    assert app.janitor is not None and await app.janitor.sweep() == 0
    assert gemini.files.names() == {name}


async def test_reset_and_retention_delete_remote_copies_too(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    clock = FakeClock(datetime.now(UTC))
    app = await make_app(clock)
    await collect(app, with_files("one", attached("report.pdf"), chat="a"))
    await collect(app, with_files("two", attached("report.pdf"), chat="b"))
    await collect(app, incoming(command="reset", chat="a"))
    assert app.janitor is not None and await app.janitor.sweep() == 1
    clock.advance(timedelta(hours=25))
    removed = await app.purge()
    assert removed["turns"] == 1 and removed["media_files"] == 1
    assert gemini.files.names() == set() and len(gemini.files.deleted) == 2
    assert query_rows("SELECT id FROM media") == []


async def test_a_deletion_that_fails_is_retried_after_a_restart(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    clock = FakeClock(datetime.now(UTC))
    app = await make_app(clock)
    await collect(app, with_files("one", attached("report.pdf")))
    gemini.files.fail_deletes = 1
    await collect(app, incoming(command="forget"))
    assert app.janitor is not None and await app.janitor.sweep() == 0
    assert app.metrics.media_deletions.labels("retry")._value.get() == 1
    assert len(query_rows("SELECT id FROM media_deletions")) == 1
    await app.aclose()

    clock.advance(timedelta(minutes=5))
    again = await make_app(clock)
    assert again.janitor is not None and await again.janitor.sweep() == 1
    assert gemini.files.names() == set()
    assert again.metrics.media_deletions.labels("deleted")._value.get() == 1


async def test_files_are_not_kept_when_keep_in_context_is_off(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app(media={"inline_max_bytes": "8KB", "keep_in_context": False})
    await collect(app, with_files("read", attached("report.pdf"), attached("picture.png")))
    assert query_rows("SELECT id FROM media") == []
    assert app.janitor is not None
    await app.janitor.sweep()
    assert gemini.files.names() == set()  # the copy went once the answer was stored
    answer_text(await collect(app, incoming("and then?")))
    assert gemini.media(1) == []


async def test_the_audit_log_records_kind_type_and_size_only(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    csv = attached("table.csv")
    await collect(app, with_files("sum the totals", csv))
    params = [json.loads(r[0]) for r in query_rows("SELECT params FROM audit WHERE action='gemini.generate'")]
    assert params[-1]["media"] == [{"kind": "text", "mime_type": "text/csv", "size": len(csv.data)}]
    every = "".join(str(r) for r in query_rows("SELECT * FROM audit"))
    assert "table.csv" not in every and base64.b64encode(csv.data).decode()[:20] not in every


@pytest.mark.parametrize(
    ("files", "overrides", "outcome", "kind", "words"),
    [
        (
            [attached("picture.png")],
            {"media": {"enabled": False}},
            "media_disabled",
            NoticeKind.UNSUPPORTED,
            "text",
        ),
        (
            [attached(f"photo{i}.jpg") for i in (1, 2, 3)],
            {"media": {"max_files_per_message": 2}},
            "media_too_many",
            NoticeKind.TOO_LONG,
            "at most 2",
        ),
        (
            [Attachment("video/mp4", b"", "[video]", "big.mp4", 25 * 1024**2, AttachmentProblem.TOO_LARGE)],
            {},
            "media_too_large",
            NoticeKind.TOO_LONG,
            "20MB",
        ),
        (
            [Attachment("audio/ogg", b"", "[voice note]", "", 9000, AttachmentProblem.UNAVAILABLE)],
            {},
            "media_unavailable",
            NoticeKind.UNAVAILABLE,
            "send it again",
        ),
        (
            [Attachment("", bytes(range(256)) * 4, "[file]", "data.bin", 1024)],
            {},
            "media_unsupported",
            NoticeKind.UNSUPPORTED,
            "PDF",
        ),
        ([attached("not_a.pdf")], {}, "media_misnamed", NoticeKind.UNSUPPORTED, "not what its name says"),
    ],
)
async def test_every_bad_file_gets_its_notice_and_nothing_reaches_gemini(
    make_app: AppMaker,
    gemini: Emulator,
    query_rows: QueryRows,
    files: list[Attachment],
    overrides: dict[str, Any],
    outcome: str,
    kind: NoticeKind,
    words: str,
) -> None:
    app = await make_app(**overrides)
    end = notice(await collect(app, with_files("look", *files)))
    assert end.kind is kind and words in end.text
    assert gemini.requests == [] and query_rows("SELECT id FROM turns") == []
    detail = app.metrics.messages.labels("telegram", "rejected", outcome)._value.get()
    assert detail == 1


async def test_an_upload_that_keeps_failing_is_told_and_nothing_is_stored(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    gemini.files.fail_uploads = 10
    end = notice(await collect(app, with_files("read", attached("report.pdf"))))
    assert end.kind is NoticeKind.UNAVAILABLE and "report.pdf" in end.text
    assert [r.action for r in gemini.requests] == [] and query_rows("SELECT id FROM turns") == []


async def test_a_file_gemini_rejects_is_told_in_the_senders_language(
    make_app: AppMaker, gemini: Emulator, query_rows: QueryRows
) -> None:
    app = await make_app()
    gemini.script(ErrorReply.bad_request("The document has no pages."))
    end = notice(await collect(app, with_files("read", attached("report.pdf"), language="zh-CN")))
    assert (
        end.kind is NoticeKind.BAD_REQUEST
        and "The document has no pages." in end.text
        and "Gemini" in end.text
    )
    assert query_rows("SELECT id FROM turns") == []
    assert app.janitor is not None and await app.janitor.sweep() == 1  # its copy is not kept
    assert gemini.files.names() == set()


async def test_the_filter_applies_to_the_caption(make_app: AppMaker, gemini: Emulator) -> None:
    # The real clock: the filter's reload watcher sleeps on it, and a test clock's sleeps move time.
    app = await make_app(SystemClock(), filter={"words": ["forbiddenword"], "action": "block"})
    end = notice(await collect(app, with_files("forbiddenword here", attached("picture.png"))))
    assert end.kind is NoticeKind.FILTERED and gemini.requests == []
    gemini.script(Reply(text="fine"))
    assert answer_text(await collect(app, with_files("a clean caption", attached("picture.png")))) == "fine"


async def test_a_file_gemini_dropped_early_is_told_once_then_left_out_with_a_note(
    make_app: AppMaker, gemini: Emulator
) -> None:
    app = await make_app()
    answer_text(await collect(app, with_files("read this", attached("report.pdf", placeholder="[PDF]"))))
    [name] = gemini.files.names()
    gemini.files.expire(name)  # gone at Gemini before the expiry it gave
    end = notice(await collect(app, incoming("and page 3?")))
    assert end.kind is NoticeKind.BAD_REQUEST and "send your message again" in end.text
    answer_text(await collect(app, incoming("and page 3?")))
    assert gemini.media(-1) == []
    assert gemini.user_texts(-1)[0] == "[PDF] read this [report.pdf is no longer available]"

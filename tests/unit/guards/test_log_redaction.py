"""One redaction step for every log line: structlog's and third-party stdlib loggers' alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.observability.logs import Redactor, configure_logging, get_logger

TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
SHORT_SECRET = "s3cr3t-value"  # shaped like nothing: only its configured value gives it away


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "json", [TELEGRAM_TOKEN, SHORT_SECRET], stream=stream)
    yield stream
    configure_logging("WARNING", "console")  # back to the suite's setting


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_httpx_url_with_the_bot_token_is_masked(captured: io.StringIO) -> None:
    logging.getLogger("httpx").warning(
        'HTTP Request: POST https://api.telegram.org/bot%s/sendMessage "HTTP/1.1 200 OK"', TELEGRAM_TOKEN
    )
    out = captured.getvalue()
    assert TELEGRAM_TOKEN not in out
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ" not in out
    assert "api.telegram.org/bot[secret]/sendMessage" in out


def test_unconfigured_token_shapes_are_masked_too(captured: io.StringIO) -> None:
    other = "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaXY"
    logging.getLogger("telegram.ext").error("bad update from bot%s", other)
    get_logger("test").warning("slack", token="xoxb-1234567890-abcdefghijkl", key="AIza" + "x" * 35)
    out = captured.getvalue()
    assert other not in out
    assert "xoxb-1234567890" not in out
    assert "AIza" + "x" * 35 not in out


def test_structlog_fields_nested_values_and_exceptions_are_masked(captured: io.StringIO) -> None:
    log = get_logger("test")
    log.warning("user.contact", detail={"mail": "alice@example.com", "phones": ["+1 (415) 555-0134"]})
    try:
        raise RuntimeError(f"failed with {SHORT_SECRET}")
    except RuntimeError:
        log.exception("boom")
    logging.getLogger("some.library").warning("reach me at bob@example.org or +44 20 7946 0958")
    out = captured.getvalue()
    for leaked in ("alice@example.com", "555-0134", SHORT_SECRET, "bob@example.org", "7946 0958"):
        assert leaked not in out
    records = lines(captured)
    assert records[0]["detail"] == {"mail": "[email]", "phones": ["[phone]"]}
    assert "[secret]" in str(records[1]["exception"])


def test_redactor_masks_key_value_pairs_and_keeps_ordinary_text() -> None:
    redactor = Redactor(["abcd1234"])
    assert (
        redactor.redact("api_key=abcd1234 and x-goog-api-key: zzz")
        == "api_key=[secret] and x-goog-api-key: [secret]"
    )
    assert redactor.redact("answered 12 messages in 3.5 s") == "answered 12 messages in 3.5 s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 415 555 0100 now", "call [phone] now"),
        ("tel (415) 555-0100", "tel [phone]"),
        ("mobile 13800138000", "mobile [phone]"),
        ("+8613800138000", "[phone]"),
        ("event msg:C1:1767225600.000100", "event msg:C1:1767225600.000100"),
        ("on 2026-11-28 at 2026-11-28 06:31:38", "on 2026-11-28 at 2026-11-28 06:31:38"),
        ("user 5123456789", "user 5123456789"),
    ],
)
def test_phone_numbers_masked_but_timestamps_and_ids_kept(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_objects_and_url_passwords_are_masked(captured: io.StringIO) -> None:
    """Values that are not strings (an exception, a URL object) are rendered through the redactor too,
    and a database or Redis URL never shows its password."""

    class Url:
        def __str__(self) -> str:
            return f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getMe"

    get_logger("test").warning(
        "objects",
        error=RuntimeError(f"failed with {SHORT_SECRET}"),
        url=Url(),
        database="postgresql+asyncpg://gembot:pa55-word@db:5432/gembot",
        redis="redis://:hunter22@cache:6379/0",
        count=3,
        missing=None,
    )
    out = captured.getvalue()
    for leaked in (SHORT_SECRET, TELEGRAM_TOKEN, "pa55-word", "hunter22"):
        assert leaked not in out
    [record] = lines(captured)
    assert record["database"] == "postgresql+asyncpg://gembot:[secret]@db:5432/gembot"
    assert record["redis"] == "redis://:[secret]@cache:6379/0"
    assert record["error"] == "RuntimeError('failed with [secret]')"
    assert (record["count"], record["missing"]) == (3, None)

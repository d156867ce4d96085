"""One redaction step for every log line: structlog's and third-party stdlib loggers' alike."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import load_settings
from bot.observability.logs import MAX_VALUE_CHARS, Redactor, configure_logging, get_logger

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


def test_a_database_password_with_slash_or_encoding_is_redacted_in_every_spelling(tmp_path: Path) -> None:
    """The app registers the password of its configured URLs; a driver's error may quote it decoded."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "storage:\n  url: postgresql+asyncpg://gembot:pa/ss%40w0rd@db:5432/gembot\n"
        "rate_limits:\n  storage: redis://:r3d%2Fis-pw@cache:6379/0\n",
        encoding="utf-8",
    )
    settings = load_settings(config, {"GEMINI_API_KEY": "AIzaSyTestKey0000000000000000000000000"})
    stream = io.StringIO()
    configure_logging("INFO", "json", settings.secret_values(), stream=stream)
    try:
        log = get_logger("test")
        try:
            raise ConnectionError(f"cannot connect to {settings.storage.url}: password pa/ss@w0rd refused")
        except ConnectionError:
            log.exception("store.connect_failed")
        log.warning("limits", detail="redis error for r3d/is-pw and r3d%2Fis-pw")
        logging.getLogger("asyncpg").error("auth failed: 'pa/ss@w0rd' for postgresql://gembot:pa/ss@w0rd@db")
    finally:
        configure_logging("WARNING", "console")
    out = stream.getvalue()
    for leaked in ("pa/ss", "ss%40w0rd", "w0rd", "r3d"):
        assert leaked not in out
    assert out.count("[secret]") >= 5


def test_unconfigured_url_passwords_holding_slash_or_at_are_masked_whole() -> None:
    redactor = Redactor()
    assert redactor.redact("db postgresql+asyncpg://u:pa/ss@w0rd@db:5432/x down") == (
        "db postgresql+asyncpg://u:[secret]@db:5432/x down"
    )
    assert redactor.redact("https://host:443/path?to=a@b.example.org") == "https://host:443/path?to=[email]"


def test_long_values_are_cut_with_a_marker_keeping_head_and_tail(captured: io.StringIO) -> None:
    body = "x" * 150_000 + f" {SHORT_SECRET} the end: ValueError: bad"
    get_logger("test").warning("http.body", body=body, near_cut="y" * (MAX_VALUE_CHARS - 10) + SHORT_SECRET)
    [record] = lines(captured)
    shown = str(record["body"])
    assert len(shown) < MAX_VALUE_CHARS + 100
    assert shown.startswith("x" * 1000) and shown.endswith("[secret] the end: ValueError: bad")
    head, rest = shown.split("…[truncated ")
    cut, tail = rest.split(" chars]…")
    assert len(head) + int(cut) + len(tail) == len(body.replace(SHORT_SECRET, "[secret]"))
    assert SHORT_SECRET[:4] not in str(record["near_cut"])  # configured secrets go before the cut


ADVERSARIAL_UNITS = [
    "a",  # a run of letters: a local part without an '@'
    "7",  # a run of digits: phone and token prefixes
    "a@",  # many '@'
    "a.",  # many dots: a domain without a top-level one
    "a@b.",
    "+1 ",  # an international number that never ends
    "x://u:",  # URLs whose password never reaches an '@'
    "token ",
    "1234567:",
]


def redaction_seconds(text: str) -> float:
    redactor = Redactor(["s3cr3t-value"])
    best = float("inf")
    for _ in range(5):
        # CPU time of this process: other work on a shared machine does not count in it.
        started = time.process_time()
        redactor.redact(text)
        best = min(best, time.process_time() - started)
    return best


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=st.sampled_from(ADVERSARIAL_UNITS) | st.text(alphabet="aZ9@.:/+-_ %", min_size=1, max_size=6))
def test_redaction_time_grows_linearly_with_the_input(unit: str) -> None:
    """Every pattern is bounded: 16 times the text takes about 16 times as long, never 256 (quadratic).

    The bound leaves room for noise (the best of five runs of this process's CPU time is kept); a
    quadratic pattern is far beyond it.
    """
    small = unit * (2000 // len(unit))
    ratio = redaction_seconds(small * 16) / max(redaction_seconds(small), 1e-4)
    assert ratio < 80, (unit, ratio)

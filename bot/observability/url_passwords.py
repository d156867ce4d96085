"""The password inside a database or rate-limit storage URL, read exactly as the client that uses it reads it.

Masking (``check-config``) and log redaction must hide the password the driver will send, whatever it holds:
SQLAlchemy's ``make_url`` ends the password at the first ``@`` (a ``/`` or ``:`` stays in it), while the
Redis client (``urllib.parse``) ends the host part at the first ``/``, ``?`` or ``#`` and the password at the
last ``@`` before it. A URL that its client would split inside the password (part of it would become the host
or the path, and show in connection errors) is refused with the fix instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote, urlsplit

__all__ = ["UrlPassword", "database_password", "storage_password"]

MASK: Final = "********"
# SQLAlchemy's own reading of the part before the host (sqlalchemy.engine.url._parse_url).
_SQLALCHEMY_USERINFO: Final = re.compile(r"[\w+]+://[^:/]*:(?P<password>[^@]*)@")


@dataclass(frozen=True, slots=True)
class UrlPassword:
    """Where the password stands in its URL (``url[start:end]``, as written: maybe percent-encoded)."""

    url: str
    start: int
    end: int

    @property
    def written(self) -> str:
        """The password as the URL spells it."""
        return self.url[self.start : self.end]

    def secret_forms(self) -> list[str]:
        """Every spelling a log line may show: as written, decoded (what the driver sends), re-encoded."""
        decoded = unquote(self.written)
        forms = [self.written, decoded, quote(decoded, safe="")]
        return [form for i, form in enumerate(forms) if form and form not in forms[:i]]

    def masked(self) -> str:
        """The URL with the password replaced by asterisks."""
        return f"{self.url[: self.start]}{MASK}{self.url[self.end :]}"


def database_password(url: str) -> UrlPassword | None:
    """The password of a SQLAlchemy URL (``storage.url``); ValueError when a raw ``@`` splits it."""
    match = _SQLALCHEMY_USERINFO.match(url)
    if match is None:
        return None
    host = url[match.end() :].split("/", 1)[0].split("?", 1)[0]
    if "@" in host:
        raise ValueError("an '@' in the password must be written %40 (else the rest is read as the host)")
    found = UrlPassword(url, match.start("password"), match.end("password"))
    return found if found.written else None


def storage_password(url: str) -> UrlPassword | None:
    """The password of a ``limits`` storage URI such as ``redis://:pw@host:6379``; ValueError when a raw
    ``/``, ``?`` or ``#`` in it would end the host part early."""
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if "@" in url[url.index("://") + 3 + len(parts.netloc) :]:
        raise ValueError("a '/', '?' or '#' in the password must be written %2F, %3F or %23")
    userinfo, at, _host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return None
    start = url.index("://") + 3 + len(user) + 1
    return UrlPassword(url, start, start + len(password))

"""Slack request signatures: checked on the raw bytes, in constant time, before anything is parsed."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Final

MAX_AGE_S: Final = 5 * 60
"""How far a request's timestamp may be from now (Slack's replay window)."""


def refusal(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str | None:
    """Why this request is not Slack's (``missing_signature``, ``bad_timestamp``, ``stale_timestamp``,
    ``bad_signature``), or None when its signature is valid."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    given = headers.get("X-Slack-Signature", "")
    if not stamp or not given:
        return "missing_signature"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return "bad_timestamp"
    if abs((time.time() if now is None else now) - int(stamp)) > MAX_AGE_S:
        return "stale_timestamp"
    base = b"v0:" + stamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "bad_signature"
    return None

"""Slack Web API failures: the error code a call failed with, and which codes mean "never available"."""

from __future__ import annotations

from typing import Final

import aiohttp
from slack_sdk.errors import SlackApiError

# Errors meaning the workspace or token cannot use a method at all: stop trying it in this process.
UNAVAILABLE_ERRORS: Final = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "method_deprecated",
        "feature_not_enabled",
        "team_not_allowed",
    }
)
CALL_ERRORS: Final = (SlackApiError, aiohttp.ClientError, TimeoutError)


def error_code(exc: SlackApiError) -> str:
    """Slack's ``error`` field of a failed call ("" when the response has none)."""
    try:
        return str(exc.response.get("error") or "")
    except Exception:
        return ""


def reason(exc: Exception) -> str:
    """Slack's error code, or the class of a connection error."""
    code = error_code(exc) if isinstance(exc, SlackApiError) else ""
    return code or exc.__class__.__name__

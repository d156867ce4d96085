"""Feedback buttons under Slack answers, and the votes they bring in.

The final message of an answer (not a notice) ends with a ``context_actions`` block holding Block Kit's
``feedback_buttons`` (👍 valued ``positive``, 👎 ``negative``). A click arrives as a ``block_actions``
payload naming the message; the engine records it as the user's vote on that answer (a later click
changes it).
"""

from __future__ import annotations

from typing import Any, Final

from adapters.slack.markup import split
from bot.domain import VoteValue
from bot.i18n import Language, text

FEEDBACK_ACTION: Final = "gembot_feedback"
POSITIVE: Final = "positive"
NEGATIVE: Final = "negative"
SECTION_LIMIT: Final = 3000
"""Characters of a section block's text."""
_VOTES: Final[dict[str, VoteValue]] = {POSITIVE: "up", NEGATIVE: "down"}


def feedback_block(language: Language) -> dict[str, Any]:
    """The ``context_actions`` block with the 👍/👎 feedback buttons."""

    def button(emoji: str, value: str, label: str) -> dict[str, Any]:
        return {
            "text": {"type": "plain_text", "text": emoji},
            "value": value,
            "accessibility_label": text(language, label),
        }

    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": button("👍", POSITIVE, "feedback_good"),
                "negative_button": button("👎", NEGATIVE, "feedback_bad"),
            }
        ],
    }


def section_blocks(mrkdwn: str) -> list[dict[str, Any]]:
    """A message's mrkdwn as section blocks."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}}
        for piece in split(mrkdwn, SECTION_LIMIT)
    ]


def clicked_vote(body: dict[str, Any]) -> tuple[str, str, str, VoteValue] | None:
    """(channel, message ts, user, vote) of a feedback click; None for anything else."""
    action = next((a for a in body.get("actions") or [] if a.get("action_id") == FEEDBACK_ACTION), None)
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    user = (body.get("user") or {}).get("id")
    if action is None or not channel or not ts or not user:
        return None
    vote = _VOTES.get(str(action.get("value")))
    return None if vote is None else (str(channel), str(ts), str(user), vote)

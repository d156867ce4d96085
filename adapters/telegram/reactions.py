"""Reactions on the bot's answers as votes: 👍 and clearly positive emoji up, 👎 and clearly negative
ones down; other reactions say nothing.

A ``message_reaction`` update carries the user's reactions on a message before and after the change.
The vote follows the reactions now standing: positive ones only is up, negative ones only is down, none
of either (every reaction removed, or only neutral ones left) withdraws a vote the old reactions cast.
Anonymous reactions (a group's admins reacting as the group) carry no user and are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from telegram import MessageReactionUpdated, ReactionType, ReactionTypeEmoji

from bot.domain import VoteValue

POSITIVE: Final = frozenset({"👍", "❤", "🔥", "👏", "😍", "🥰", "🤩", "💯", "👌", "🏆", "🎉"})
NEGATIVE: Final = frozenset({"👎", "💩", "🤮", "😡", "🤬", "🤡"})
_VARIATION_SELECTOR: Final = "\ufe0f"


def _emoji(reactions: Sequence[ReactionType]) -> set[str]:
    return {r.emoji.replace(_VARIATION_SELECTOR, "") for r in reactions if isinstance(r, ReactionTypeEmoji)}


def _leaning(emoji: set[str]) -> VoteValue | None:
    """up, down, or None when the reactions are neutral or mixed."""
    up, down = bool(emoji & POSITIVE), bool(emoji & NEGATIVE)
    if up == down:
        return None
    return "up" if up else "down"


def reaction_vote(update: MessageReactionUpdated) -> tuple[bool, VoteValue | None]:
    """(whether the change is a vote, the vote: up, down, or None for withdrawn)."""
    if update.user is None:
        return False, None
    new = _emoji(update.new_reaction)
    leaning = _leaning(new)
    if leaning is not None:
        return True, leaning
    mixed = bool(new & POSITIVE) and bool(new & NEGATIVE)
    # Neutral reactions (or none) left: a vote the old ones cast is withdrawn; mixed ones change nothing.
    return not mixed and _leaning(_emoji(update.old_reaction)) is not None, None

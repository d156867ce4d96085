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

from bot.store import VoteValue

POSITIVE: Final = frozenset({"👍", "❤", "🔥", "👏", "😍", "🥰", "🤩", "💯", "👌", "🏆", "🎉"})
NEGATIVE: Final = frozenset({"👎", "💩", "🤮", "😡", "🤬", "🤡"})
_VARIATION_SELECTOR: Final = "\ufe0f"


def _leaning(reactions: Sequence[ReactionType]) -> VoteValue | None:
    """up, down, or None when the reactions are neutral or mixed."""
    emoji = {r.emoji.replace(_VARIATION_SELECTOR, "") for r in reactions if isinstance(r, ReactionTypeEmoji)}
    up, down = bool(emoji & POSITIVE), bool(emoji & NEGATIVE)
    if up == down:
        return None
    return "up" if up else "down"


def reaction_vote(update: MessageReactionUpdated) -> tuple[bool, VoteValue | None]:
    """(whether the change is a vote, the vote: up, down, or None for withdrawn)."""
    if update.user is None:
        return False, None
    new = _leaning(update.new_reaction)
    if new is not None:
        return True, new
    if not update.new_reaction:
        return _leaning(update.old_reaction) is not None, None
    # Neutral or mixed reactions left: a vote the old ones cast is withdrawn.
    return _leaning(update.old_reaction) is not None and not _mixed(update.new_reaction), None


def _mixed(reactions: Sequence[ReactionType]) -> bool:
    emoji = {r.emoji.replace(_VARIATION_SELECTOR, "") for r in reactions if isinstance(r, ReactionTypeEmoji)}
    return bool(emoji & POSITIVE) and bool(emoji & NEGATIVE)

"""Which Telegram reactions and Slack clicks are votes, and which vote."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from telegram import Chat, MessageReactionUpdated, ReactionTypeCustomEmoji, ReactionTypeEmoji, User

from adapters.slack.feedback import FEEDBACK_ACTION, clicked_vote, feedback_block, section_blocks
from adapters.telegram.reactions import reaction_vote

ANN = User(1, "Ann", is_bot=False)
CHAT = Chat(1, Chat.PRIVATE)


def change(old: list[str], new: list[str], user: User | None = ANN) -> MessageReactionUpdated:
    def reactions(emoji: list[str]) -> tuple[ReactionTypeEmoji | ReactionTypeCustomEmoji, ...]:
        return tuple(
            ReactionTypeCustomEmoji(e[1:]) if e.startswith(":") else ReactionTypeEmoji(e) for e in emoji
        )

    return MessageReactionUpdated(
        CHAT, 5, datetime(2026, 1, 1, tzinfo=UTC), reactions(old), reactions(new), user=user
    )


@pytest.mark.parametrize(
    ("old", "new", "vote"),
    [
        ([], ["👍"], (True, "up")),
        ([], ["❤️"], (True, "up")),  # with the variation selector, as some clients send it
        ([], ["❤"], (True, "up")),
        ([], ["🔥", "🤔"], (True, "up")),  # a neutral one besides does not matter
        ([], ["👎"], (True, "down")),
        ([], ["💩"], (True, "down")),
        (["👎"], ["🔥"], (True, "up")),  # changed
        (["👍"], [], (True, None)),  # taken back
        (["👍"], ["🤔"], (True, None)),  # only a neutral one left
        ([], ["🤔"], (False, None)),  # no vote at all
        (["🤔"], [], (False, None)),
        ([], ["👍", "👎"], (False, None)),  # both at once: says nothing
        (["👍"], ["👍", "👎"], (False, None)),  # nor does adding the other: the vote stands
        ([], [":5368324170671202286"], (False, None)),  # custom emoji are not read
    ],
)
def test_reactions_as_votes(old: list[str], new: list[str], vote: tuple[bool, str | None]) -> None:
    assert reaction_vote(change(old, new)) == vote


def test_anonymous_reactions_are_not_votes() -> None:
    assert reaction_vote(change([], ["👍"], user=None)) == (False, None)


def test_feedback_buttons_block_and_long_answers_in_sections() -> None:
    block = feedback_block("en")
    assert block["type"] == "context_actions"
    [buttons] = block["elements"]
    assert buttons["type"] == "feedback_buttons" and buttons["action_id"] == FEEDBACK_ACTION
    assert buttons["positive_button"]["value"] == "positive"
    assert buttons["negative_button"]["value"] == "negative"
    assert buttons["positive_button"]["accessibility_label"] == "Good answer"
    assert feedback_block("zh")["elements"][0]["negative_button"]["accessibility_label"] == "回答没有帮助"
    long = "\n\n".join(f"paragraph {i} " + "word " * 60 for i in range(20))
    blocks = section_blocks(long)
    assert len(blocks) > 1 and all(len(s["text"]["text"]) <= 3000 for s in blocks)
    assert "".join(s["text"]["text"] for s in blocks).replace("\n", "") == long.replace("\n", "")


def payload(value: str, action_id: str = FEEDBACK_ACTION) -> dict[str, object]:
    return {
        "type": "block_actions",
        "user": {"id": "U1"},
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "D1"},
        "actions": [{"type": "feedback_buttons", "action_id": action_id, "value": value}],
    }


def test_feedback_clicks() -> None:
    assert clicked_vote(payload("positive")) == ("D1", "1.2", "U1", "up")
    assert clicked_vote(payload("negative")) == ("D1", "1.2", "U1", "down")
    assert clicked_vote(payload("other")) is None
    assert clicked_vote(payload("positive", action_id="someone_else")) is None

"""Feedback on answers: which platform messages show an answer, and the users' votes on them.

Adapters report the messages an answer was posted in (:meth:`Votes.answer_shown`) and every vote a user
casts, changes or withdraws on one of them (:meth:`Votes.record`); a vote on any other message is
ignored. Each vote counts in ``gembot_feedback_total{platform,value}`` (value ``up``, ``down`` or
``withdrawn``) and /stats shows the votes standing.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.clock import Clock
from bot.domain import Incoming, Platform, VoteValue
from bot.observability.logs import get_logger
from bot.observability.metrics import Metrics
from bot.store import Feedback

log = get_logger(__name__)

WITHDRAWN = "withdrawn"


class Votes:
    """Records answers' messages and the votes on them."""

    def __init__(self, feedback: Feedback, clock: Clock, metrics: Metrics) -> None:
        self._feedback = feedback
        self._clock = clock
        self._metrics = metrics

    async def answer_shown(self, message: Incoming, message_ids: Sequence[str]) -> None:
        """``message``'s answer is shown in ``message_ids`` of its chat (a failure is logged, not raised)."""
        if not message.keep_history or not message_ids:
            return
        try:
            await self._feedback.note_answer(
                message.platform.value, message.event_id, message.chat_key, message_ids, self._clock.now()
            )
        except Exception:
            # Only the votes on this answer depend on it: the answer stays shown.
            log.warning("feedback.note_answer_failed", platform=message.platform.value, exc_info=True)

    async def record(
        self, platform: Platform, chat_key: str, message_id: str, user_id: str, value: VoteValue | None
    ) -> bool:
        """``user_id`` voted ``value`` on the answer in ``message_id`` (None: withdrew their vote).

        False when the message shows no answer the bot knows (the vote is ignored).
        """
        known = await self._feedback.vote(
            platform.value, chat_key, message_id, user_id, value=value, now=self._clock.now()
        )
        if known:
            self._metrics.feedback.labels(platform.value, value or WITHDRAWN).inc()
            log.info("feedback.vote", platform=platform.value, value=value or WITHDRAWN)
        return known

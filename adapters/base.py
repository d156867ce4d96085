"""What every platform adapter offers the composition root."""

from __future__ import annotations

from typing import Protocol

from bot.domain import FollowUp


class Adapter(Protocol):
    """A running connection to one platform."""

    name: str

    async def start(self) -> None:
        """Connect and begin delivering messages to the engine."""
        ...

    async def stop(self) -> None:
        """Stop taking new messages, finish what is in flight, disconnect."""
        ...

    async def ready(self) -> str | None:
        """None when connected, else the reason (for /readyz)."""
        ...

    async def follow_up(self, item: FollowUp) -> None:
        """Send ``item.notice`` to the chat (and thread) of a message a dead process never answered."""
        ...

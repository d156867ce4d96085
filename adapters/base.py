"""What every platform adapter offers the composition root."""

from __future__ import annotations

from typing import Protocol


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

"""What every platform adapter takes from, and offers to, the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from aiohttp import web

from bot.alerts import AlertHandler
from bot.clock import Clock
from bot.config import MediaSettings
from bot.domain import FollowUp
from bot.engine import Engine
from bot.i18n import Language
from bot.observability.metrics import Metrics

SettingsT_co = TypeVar("SettingsT_co", covariant=True)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Routes(Protocol):
    """Where an adapter mounts its webhook routes and readiness checks (the HTTP server, before it starts)."""

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler``."""
        ...

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[str | None]]) -> None:
        """Have /readyz ask ``check`` (None: ready, else why not)."""
        ...


class Alerts(Protocol):
    """The admin alerts an adapter delivers to its platform's admins."""

    def subscribe(self, handler: AlertHandler) -> Callable[[], None]:
        """Deliver every future alert to ``handler``; returns a function that unsubscribes it."""
        ...


@dataclass(frozen=True, slots=True)
class AdapterDeps(Generic[SettingsT_co]):
    """Everything an adapter is built from: the same parts for every platform, and its own settings."""

    settings: SettingsT_co
    engine: Engine
    metrics: Metrics
    alerts: Alerts
    routes: Routes
    clock: Clock
    language: Language
    """The configured default language (for texts the adapter words itself)."""
    media: MediaSettings = field(default_factory=MediaSettings)
    """Whether files users send are fetched, and up to what size."""


class Adapter(Protocol):
    """A running connection to one platform."""

    name: str

    async def start(self) -> None:
        """Connect and begin delivering messages to the engine."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop taking new messages, give those in flight up to ``grace`` seconds, disconnect."""
        ...

    async def ready(self) -> str | None:
        """None when connected, else the reason (for /readyz)."""
        ...

    async def follow_up(self, item: FollowUp) -> None:
        """Send ``item.notice`` to the chat (and thread) of a message a dead process never answered."""
        ...

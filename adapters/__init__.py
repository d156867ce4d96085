"""Platform adapters: they normalize events into ``Incoming`` and render the engine's answers.

:data:`PLATFORMS` is the one list of the platforms gembot runs on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.base import Adapter, AdapterDeps
    from bot.config import Settings, SlackSettings, TelegramSettings


class AdapterUnavailableError(RuntimeError):
    """An enabled platform has no adapter in this build."""


@dataclass(frozen=True, slots=True)
class PlatformAdapter:
    """One platform: its name, where its settings are, and the package whose ``build(deps)`` makes its
    adapter (imported only when the platform is enabled, so a build may leave a platform's SDK out)."""

    name: str
    settings: Callable[[Settings], TelegramSettings | SlackSettings]
    package: str

    def enabled(self, settings: Settings) -> bool:
        """Whether ``settings`` turn this platform on."""
        return self.settings(settings).is_enabled

    def build(self, deps: AdapterDeps[Any]) -> Adapter:
        """The platform's adapter, built from ``deps`` (its routes mounted on ``deps.routes``)."""
        try:
            module = importlib.import_module(self.package)
        except ModuleNotFoundError as exc:
            raise AdapterUnavailableError(
                f"{self.name} is enabled but this build has no {self.name} adapter"
            ) from exc
        adapter: Adapter = module.build(deps)
        return adapter


PLATFORMS: tuple[PlatformAdapter, ...] = (
    PlatformAdapter("telegram", lambda settings: settings.telegram, "adapters.telegram"),
    PlatformAdapter("slack", lambda settings: settings.slack, "adapters.slack"),
)


def enabled_platforms(settings: Settings) -> list[PlatformAdapter]:
    """The platforms ``settings`` turn on, in :data:`PLATFORMS` order."""
    return [platform for platform in PLATFORMS if platform.enabled(settings)]

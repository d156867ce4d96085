"""Platform adapters: they normalize events into ``Incoming`` and render the engine's answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.base import Adapter
    from bot.app import App
    from bot.server import HttpServer


class AdapterUnavailableError(RuntimeError):
    """An enabled platform has no adapter in this build."""


def build_enabled(app: App, server: HttpServer) -> list[Adapter]:
    """Build the adapter of every enabled platform; each mounts its routes and readiness check."""
    import importlib

    built: list[Adapter] = []
    for name, enabled in (
        ("telegram", app.settings.telegram.is_enabled),
        ("slack", app.settings.slack.is_enabled),
    ):
        if not enabled:
            continue
        try:
            module = importlib.import_module(f"adapters.{name}")
        except ModuleNotFoundError as exc:
            raise AdapterUnavailableError(f"{name} is enabled but this build has no {name} adapter") from exc
        adapter: Adapter = module.build(app, server)
        server.add_readiness_check(name, adapter.ready)
        built.append(adapter)
    return built

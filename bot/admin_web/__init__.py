"""The admin page: health, usage and settings at a glance, in a browser, on gembot's own HTTP server.

An HTTP surface of the core (not a chat adapter), mounted under ``admin_web.path`` when
``admin_web.enabled`` is true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.server import HttpServer

if TYPE_CHECKING:
    from bot.app import App


def mount_admin_web(server: HttpServer, app: App) -> None:
    """Add the admin page's routes to ``server`` (before it starts)."""
    from bot.admin_web.views import AdminWeb

    AdminWeb(app, server).mount()

"""Which Slack permissions gembot needs, stated once: the bot-token scopes of every Web API method the
adapter calls, of every event it subscribes to, and of its slash command and shortcuts.

The app manifests in deploy/ list exactly the union of these for what the code actually calls (a test
reads the calls out of the adapter's source), so a new call without its scope, or a scope nothing needs
any more, fails the tests instead of an install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

_HISTORY: Final = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})

METHOD_SCOPES: Final[Mapping[str, frozenset[str]]] = {
    "auth.test": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.startStream": frozenset({"chat:write"}),
    "chat.appendStream": frozenset({"chat:write"}),
    "chat.stopStream": frozenset({"chat:write"}),
    # Also in channel threads, where chat:write is what Slack asks for; assistant threads take either.
    "assistant.threads.setStatus": frozenset({"chat:write"}),
    "assistant.threads.setSuggestedPrompts": frozenset({"assistant:write"}),
    "assistant.threads.setTitle": frozenset({"assistant:write"}),
    "users.info": frozenset({"users:read"}),
    # Summaries read public and private channels, DMs and group DMs; the panel reads its DM thread.
    "conversations.history": _HISTORY,
    "conversations.replies": _HISTORY,
    "views.publish": frozenset(),
    # A shared file's details; its url_private_download is fetched with the same scope.
    "files.info": frozenset({"files:read"}),
}
"""Bot-token scopes of each Web API method the adapter calls (all of them are needed)."""

APP_TOKEN_SCOPES: Final[Mapping[str, str]] = {"apps.connections.open": "connections:write"}
"""Socket mode's own call, made with the app-level token (its scope is set on that token, not the bot)."""

EVENT_SCOPES: Final[Mapping[str, frozenset[str]]] = {
    "app_mention": frozenset({"app_mentions:read"}),
    "message.channels": frozenset({"channels:history"}),
    "message.groups": frozenset({"groups:history"}),
    "message.im": frozenset({"im:history"}),
    "message.mpim": frozenset({"mpim:history"}),
    "app_home_opened": frozenset(),
    "assistant_thread_started": frozenset({"assistant:write"}),
    "assistant_thread_context_changed": frozenset({"assistant:write"}),
}
"""The events the adapter subscribes to, and the scope each subscription needs."""

COMMAND_SCOPES: Final = frozenset({"commands"})
"""What slash commands and shortcuts need."""


def required_scopes(methods: Iterable[str], events: Iterable[str], *, commands: bool) -> frozenset[str]:
    """The bot scopes for calling ``methods``, receiving ``events`` and (``commands``) slash commands and
    shortcuts; a method or event not listed here raises KeyError (add it above with its scopes)."""
    scopes: set[str] = set()
    for method in methods:
        scopes |= METHOD_SCOPES[method]
    for event in events:
        scopes |= EVENT_SCOPES[event]
    if commands:
        scopes |= COMMAND_SCOPES
    return frozenset(scopes)

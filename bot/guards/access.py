"""Who is an admin and which chats the bot serves, by platform user/chat id (never display names)."""

from __future__ import annotations

from bot.config import Settings
from bot.domain import Incoming, Platform


class AccessPolicy:
    """Admins and allow-lists per platform.

    A message posted on behalf of its chat (``Incoming.sent_as_chat``: the adapter decides which those
    are) is from an admin when the chat's own id is in the admin list; any other message when its
    sender's id is. The operator of this process (``Incoming.operator``) is always an admin.
    """

    def __init__(self, settings: Settings) -> None:
        self._admins: dict[Platform, set[str]] = {
            Platform.TELEGRAM: {str(i) for i in settings.telegram.admin_ids},
            Platform.SLACK: set(settings.slack.admin_ids),
        }
        self._chats: dict[Platform, set[str]] = {
            Platform.TELEGRAM: {str(i) for i in settings.telegram.allowed_chat_ids},
            Platform.SLACK: set(settings.slack.allowed_channel_ids),
        }

    def is_admin(self, message: Incoming) -> bool:
        """Whether the sender of ``message`` is an admin."""
        if message.operator:
            return True
        listed_id = message.chat_key if message.sent_as_chat else message.user_id
        return listed_id in self._admins.get(message.platform, set())

    def chat_allowed(self, message: Incoming) -> bool:
        """Whether the chat is inside the allow-list (an empty list allows every chat)."""
        chats = self._chats.get(message.platform)
        return not chats or message.chat_key in chats

    def chat_migrated(self, platform: Platform, old_id: str, new_id: str) -> bool:
        """Let ``new_id`` inherit what ``old_id`` is granted (a Telegram group that became a supergroup).

        True when that changed anything. Kept in this process only, until it restarts: other replicas learn it
        only if one of the migration's service messages reaches them too, and every process once the config
        names the new id.
        """
        changed = False
        for granted in (self._chats.get(platform), self._admins.get(platform)):
            if granted is not None and old_id in granted and new_id not in granted:
                granted.add(new_id)
                changed = True
        return changed

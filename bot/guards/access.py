"""Who is an admin and which chats the bot serves, by platform user/chat id (never display names)."""

from __future__ import annotations

from bot.config import Settings
from bot.domain import Incoming, Platform


class AccessPolicy:
    """Admins and allow-lists per platform."""

    def __init__(self, settings: Settings) -> None:
        self._telegram_admins = {str(i) for i in settings.telegram.admin_ids}
        self._telegram_chats = {str(i) for i in settings.telegram.allowed_chat_ids}
        self._slack_admins = set(settings.slack.admin_ids)
        self._slack_channels = set(settings.slack.allowed_channel_ids)

    def is_admin(self, platform: Platform, user_id: str) -> bool:
        """The console's operator is always an admin; elsewhere the configured ids decide."""
        if platform is Platform.CONSOLE:
            return True
        if platform is Platform.TELEGRAM:
            return user_id in self._telegram_admins
        return user_id in self._slack_admins

    def chat_allowed(self, message: Incoming) -> bool:
        """Whether the chat is inside the allow-list (an empty list allows every chat)."""
        if message.platform is Platform.TELEGRAM:
            return not self._telegram_chats or message.chat_key in self._telegram_chats
        if message.platform is Platform.SLACK:
            return not self._slack_channels or message.chat_key in self._slack_channels
        return True

    def admins(self, platform: Platform) -> frozenset[str]:
        """The admin ids of one platform (for alerts)."""
        if platform is Platform.TELEGRAM:
            return frozenset(self._telegram_admins)
        if platform is Platform.SLACK:
            return frozenset(self._slack_admins)
        return frozenset()

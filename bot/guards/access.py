"""Who is an admin and which chats the bot serves, by platform user/chat id (never display names)."""

from __future__ import annotations

from bot.config import Settings
from bot.domain import Incoming, Platform

ANONYMOUS_ADMIN_PREFIX = "anon:"


def anonymous_admin_id(chat_id: int | str) -> str:
    """The user id of a Telegram group's anonymous admins (they post as the group, so who is unknown)."""
    return f"{ANONYMOUS_ADMIN_PREFIX}{chat_id}"


class AccessPolicy:
    """Admins and allow-lists per platform.

    A Telegram group's anonymous admins (user id :func:`anonymous_admin_id` of the group, which only a
    message posted as that group inside that group gets) are admins when the group's own (negative) id is
    in ``telegram.admin_ids``. Being a group's admin is not enough by itself: anyone can create a group.
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

    def is_admin(self, platform: Platform, user_id: str) -> bool:
        """The console's operator is always an admin; elsewhere the configured ids decide."""
        if platform is Platform.CONSOLE:
            return True
        admins = self._admins.get(platform, set())
        if platform is Platform.TELEGRAM:
            # Users have positive ids, groups negative ones: a group's id in admin_ids stands for its
            # anonymous admins only, and anon:<id> only for a group.
            anonymous = user_id.startswith(ANONYMOUS_ADMIN_PREFIX)
            listed_id = user_id.removeprefix(ANONYMOUS_ADMIN_PREFIX)
            return anonymous == listed_id.startswith("-") and listed_id in admins
        return user_id in admins

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

    def admins(self, platform: Platform) -> frozenset[str]:
        """The admin ids of one platform (for alerts)."""
        return frozenset(self._admins.get(platform, ()))

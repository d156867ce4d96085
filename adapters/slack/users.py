"""Slack users' display names and locales (users.info), cached for an hour per user."""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import error_code
from bot.clock import Clock
from bot.observability.logs import get_logger

log = get_logger(__name__)

_USER_CACHE: Final = 5_000
_USER_TTL: Final = 3600.0


class UserDirectory:
    """Who a Slack user id is, as far as the bot shows it: asked once an hour at most per user."""

    def __init__(self, client: AsyncWebClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._users: OrderedDict[str, tuple[float, str, str | None]] = OrderedDict()

    async def lookup(self, user: str) -> tuple[str, str | None]:
        """(display name, locale) of ``user``; ("", None) when Slack does not say (logged, never raised)."""
        now = self._clock.monotonic()
        cached = self._users.get(user)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        name, locale = "", None
        try:
            info = await self._client.users_info(user=user, include_locale=True)
            data = info.get("user") or {}
            profile = data.get("profile") or {}
            name = str(profile.get("display_name") or profile.get("real_name") or data.get("real_name") or "")
            locale = data.get("locale") or None
        except SlackApiError as exc:
            log.info("slack.users_info_failed", error=error_code(exc))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack.users_info_failed", error=exc.__class__.__name__)
        self._users[user] = (now + _USER_TTL, name, locale)
        self._users.move_to_end(user)
        while len(self._users) > _USER_CACHE:
            self._users.popitem(last=False)
        return name, locale

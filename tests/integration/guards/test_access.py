"""Access through the engine: a Telegram group's anonymous admins, and grants that follow a migration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.app import App
from bot.domain import NoticeKind, Platform
from bot.guards.access import AccessPolicy, anonymous_admin_id
from tests.conftest import SettingsFactory
from tests.helpers import collect, incoming, notice_kind

AppFactory = Callable[..., Any]
ADMINS_GROUP = -100500


async def test_anonymous_admins_of_a_listed_group_are_admins(app_factory: AppFactory) -> None:
    app: App = await app_factory(telegram={"admin_ids": [ADMINS_GROUP], "allowed_chat_ids": [-1]})

    async def stats(chat: int) -> NoticeKind:
        message = incoming(chat=str(chat), user=anonymous_admin_id(chat), private=False, command="stats")
        return notice_kind(await collect(app, message))

    assert await stats(ADMINS_GROUP) is NoticeKind.INFO  # served outside the allow-list, as admins are
    app_other: App = await app_factory(telegram={"admin_ids": [ADMINS_GROUP]})
    other = incoming(chat="-100600", user=anonymous_admin_id(-100600), private=False, command="stats")
    assert notice_kind(await collect(app_other, other)) is NoticeKind.FORBIDDEN


def test_grants_follow_a_migrated_chat(make_settings: SettingsFactory) -> None:
    policy = AccessPolicy(
        make_settings(
            telegram={"admin_ids": [7, ADMINS_GROUP], "allowed_chat_ids": [ADMINS_GROUP, -5]},
            slack={"allowed_channel_ids": ["C1"]},
        )
    )
    tg = Platform.TELEGRAM
    new = "-1000000100500"
    moved = incoming(chat=new, private=False)
    assert not policy.chat_allowed(moved) and not policy.is_admin(tg, anonymous_admin_id(new))
    assert policy.chat_migrated(tg, str(ADMINS_GROUP), new)
    assert policy.chat_allowed(moved) and policy.is_admin(tg, anonymous_admin_id(new))
    assert not policy.chat_migrated(tg, str(ADMINS_GROUP), new)  # the second service message: nothing new
    assert not policy.chat_migrated(tg, "-9", "-1000000000009")  # never granted anything
    assert not policy.chat_allowed(incoming(chat="-1000000000009", private=False))
    assert not policy.is_admin(tg, anonymous_admin_id(7))  # a user id is not a group's
    assert not policy.is_admin(tg, new)  # only its anonymous admins, not a user with that number

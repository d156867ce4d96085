"""Access through the engine: a Telegram group's anonymous admins, and grants that follow a migration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.telegram.normalize import anonymous_admin_id
from bot.app import App
from bot.domain import NoticeKind, Platform
from tests.helpers import answer_text, collect, incoming, notice_kind

AppFactory = Callable[..., Any]
ADMINS_GROUP = -100500


def as_group(chat: int | str, command: str = "stats") -> Any:
    """A command posted on behalf of a group by its anonymous admins."""
    return incoming(
        chat=str(chat), user=anonymous_admin_id(chat), private=False, command=command, as_chat=True
    )


async def test_anonymous_admins_of_a_listed_group_are_admins(app_factory: AppFactory) -> None:
    app: App = await app_factory(telegram={"admin_ids": [ADMINS_GROUP], "allowed_chat_ids": [-1]})
    # Served outside the allow-list, as admins are.
    assert notice_kind(await collect(app, as_group(ADMINS_GROUP))) is NoticeKind.INFO
    app_other: App = await app_factory(telegram={"admin_ids": [ADMINS_GROUP]})
    assert notice_kind(await collect(app_other, as_group(-100600))) is NoticeKind.FORBIDDEN


async def test_grants_follow_a_migrated_chat(app_factory: AppFactory) -> None:
    app: App = await app_factory(
        telegram={"admin_ids": [7, ADMINS_GROUP], "allowed_chat_ids": [ADMINS_GROUP, -5]},
        slack={"allowed_channel_ids": ["C1"]},
    )
    tg = Platform.TELEGRAM
    new = "-1000000100500"
    assert await collect(app, as_group(new)) == []  # outside the allow-list and no admin: silence
    assert await collect(app, incoming("hi", chat=new, user="8", private=False)) == []
    moved = await app.engine.chat_moved(tg, str(ADMINS_GROUP), new)
    assert moved.granted and moved.conversations == 0
    assert notice_kind(await collect(app, as_group(new))) is NoticeKind.INFO
    assert answer_text(await collect(app, incoming("hi", chat=new, user="8", private=False)))  # served now
    again = await app.engine.chat_moved(tg, str(ADMINS_GROUP), new)  # the second service message
    assert not again.granted
    assert not (await app.engine.chat_moved(tg, "-9", "-1000000000009")).granted  # never granted anything
    assert await collect(app, incoming("hi", chat="-1000000000009", private=False)) == []
    # A plain member of the migrated group is served now, but is not an admin.
    assert notice_kind(await collect(app, incoming(chat=new, user="8", private=False, command="stats"))) is (
        NoticeKind.FORBIDDEN
    )

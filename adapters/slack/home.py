"""The App Home tab: the user's own use against their budgets, their DM's model and persona, what the bot
keeps and for how long, and a "Forget me" button (with Slack's confirmation dialog) that does what
``/forget`` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from adapters.slack.markup import escape
from adapters.slack.normalize import Job
from bot.chat_commands import usage_text
from bot.chat_settings import CUSTOM, OFF, ChatSettings
from bot.clock import Clock
from bot.commands import human_retention
from bot.domain import Incoming, Platform
from bot.i18n import Language, text

if TYPE_CHECKING:
    from bot.engine import Engine

FORGET_ACTION: Final = "forget_me"


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown[:3000]}}


def _header(title: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}


def _plain(value: str) -> dict[str, str]:
    return {"type": "plain_text", "text": value}


def persona_label(current: ChatSettings, lang: Language) -> str:
    """The persona as the home tab shows it."""
    if current.persona == OFF:
        return text(lang, "home_persona_default")
    if current.persona == CUSTOM:
        return text(lang, "persona_custom_name")
    return current.persona


class HomeTab:
    """Builds and publishes one user's home tab."""

    def __init__(self, engine: Engine, clock: Clock, command_prefix: str) -> None:
        self._engine = engine
        self._clock = clock
        self._prefix = command_prefix

    async def view(self, user: str, dm_channel: str, lang: Language) -> dict[str, Any]:
        """The ``home`` view of ``user`` (whose DM with the bot is ``dm_channel``)."""
        usage = usage_text(await self._engine.usage(Platform.SLACK, user), self._clock.now(), lang)
        current = await self._engine.chat_settings(Platform.SLACK, dm_channel) if dm_channel else None
        blocks: list[dict[str, Any]] = [_header(text(lang, "home_usage_title")), _section(escape(usage))]
        if current is not None:
            settings = text(lang, "home_settings", model=current.model, persona=persona_label(current, lang))
            blocks += [_header(text(lang, "home_settings_title")), _section(escape(settings))]
        retention = human_retention(self._engine.retention, lang)
        privacy = text(lang, "home_privacy", retention=retention, prefix=self._prefix)
        blocks += [
            _header(text(lang, "home_privacy_title")),
            _section(escape(privacy)),
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": FORGET_ACTION,
                        "style": "danger",
                        "text": _plain(text(lang, "home_forget_button")),
                        "value": dm_channel,
                        "confirm": {
                            "title": _plain(text(lang, "home_forget_confirm_title")),
                            "text": _plain(text(lang, "home_forget_confirm_text")),
                            "confirm": _plain(text(lang, "home_forget_confirm_yes")),
                            "deny": _plain(text(lang, "home_forget_confirm_no")),
                            "style": "danger",
                        },
                    }
                ],
            },
        ]
        return {"type": "home", "blocks": blocks}


def forget_job(body: Mapping[str, Any]) -> Job | None:
    """The home tab's confirmed "Forget me" click (a ``block_actions`` payload) as ``/forget`` from the
    user's DM with the bot (the button carries its id)."""
    user = (body.get("user") or {}).get("id")
    actions = body.get("actions") or []
    action = next((a for a in actions if a.get("action_id") == FORGET_ACTION), None)
    if not (isinstance(user, str) and user and action is not None):
        return None
    dm = str(action.get("value") or "")
    stamp = str(action.get("action_ts") or body.get("trigger_id") or "")
    if not dm.startswith("D") or not stamp:
        return None
    incoming = Incoming(
        platform=Platform.SLACK,
        chat_key=dm,
        user_id=user,
        user_name=str((body.get("user") or {}).get("name") or ""),
        text="",
        event_id=f"action:{user}:{stamp}",
        is_private=True,
        command="forget",
        reply_ids={"channel": dm},
    )
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or ""
    return Job(incoming=incoming, channel=dm, thread_ts=None, team_id=str(team), from_home=True)

"""The chat commands: /start, /help, /reset, /stats, /forget (and, through
:class:`bot.chat_commands.ChatCommands`, /model, /persona, /settings, /usage)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import stats
from bot.chat_commands import CHAT_COMMANDS, ChatCommands
from bot.clock import Clock
from bot.config import Settings, format_duration
from bot.domain import Incoming, Notice, NoticeKind, Platform
from bot.i18n import Language, text
from bot.observability.logs import get_logger
from bot.store import (
    AuditRecord,
    Conversations,
    Feedback,
    QuotaCounters,
    Records,
    Statistics,
    UsageCounters,
    Users,
)

log = get_logger(__name__)

COMMANDS = ("start", "help", "reset", "stats", "forget", *CHAT_COMMANDS)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What the engine already knows about the sender."""

    language: Language
    is_admin: bool
    now: datetime


def human_retention(retention: timedelta, language: Language) -> str:
    hours = retention.total_seconds() / 3600
    if hours.is_integer() and hours >= 1:
        return text(language, "unit_hour", count=int(hours))
    return format_duration(retention)


class Commands:
    """Runs one command and answers with a single notice."""

    def __init__(
        self,
        *,
        settings: Settings,
        conversations: Conversations,
        users: Users,
        records: Records,
        statistics: Statistics,
        quota: QuotaCounters,
        clock: Clock,
        bot_name: str = "gembot",
        chat_commands: ChatCommands | None = None,
        usage: UsageCounters | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self._settings = settings
        self._conversations = conversations
        self._users = users
        self._records = records
        self._statistics = statistics
        self._quota = quota
        self._clock = clock
        self._bot_name = bot_name
        self._chat_commands = chat_commands
        self._usage = usage
        self._feedback = feedback

    async def run(self, message: Incoming, ctx: CommandContext) -> Notice:
        """Answer ``message.command``."""
        name = (message.command or "").lower()
        if name in ("start", "help"):
            return self._help(message, ctx)
        if name == "reset":
            return await self._reset(message, ctx)
        if name == "stats":
            return await self._stats(message, ctx)
        if name == "forget":
            return await self._forget(message, ctx)
        if name in CHAT_COMMANDS and self._chat_commands is not None:
            return await self._chat_commands.run(message, ctx.language, ctx.is_admin, ctx.now)
        return Notice(NoticeKind.INFO, text(ctx.language, "unknown_command", prefix=message.command_prefix))

    def _help(self, message: Incoming, ctx: CommandContext) -> Notice:
        scope = "" if message.is_private else text(ctx.language, "reset_scope_group")
        prefix = message.command_prefix
        # Summaries read a channel's history, which only the Slack adapter can do.
        extra = (
            text(ctx.language, "help_summarize", prefix=prefix, bot_name=self._bot_name)
            if message.platform is Platform.SLACK
            else ""
        )
        return Notice(
            NoticeKind.INFO,
            text(
                ctx.language,
                "help",
                bot_name=self._bot_name,
                memory=text(ctx.language, "help_memory", count=self._settings.conversation.max_turns),
                retention=human_retention(self._settings.storage.retention, ctx.language),
                prefix=prefix,
                reset_scope=scope,
                platform_commands=extra,
            ),
        )

    async def _reset(self, message: Incoming, ctx: CommandContext) -> Notice:
        if not message.is_private and not ctx.is_admin:
            return Notice(NoticeKind.FORBIDDEN, text(ctx.language, "reset_denied"))
        key = (message.platform.value, message.chat_key, message.thread_key)
        if not await self._conversations.conversation_exists(*key):
            # E.g. `/gembot reset` in a Slack channel, whose conversations are its threads.
            await self._audit(message, ctx, "command.reset", {"exchanges": 0})
            return Notice(NoticeKind.INFO, text(ctx.language, "reset_nothing"))
        conversation_id = await self._conversations.open_conversation(*key, ctx.now)
        count = await self._conversations.reset_conversation(conversation_id)
        await self._audit(message, ctx, "command.reset", {"exchanges": count})
        return Notice(NoticeKind.INFO, text(ctx.language, "reset_done", count=count))

    async def _stats(self, message: Incoming, ctx: CommandContext) -> Notice:
        if not ctx.is_admin:
            return Notice(NoticeKind.FORBIDDEN, text(ctx.language, "stats_denied"))
        report = await stats.collect(
            self._statistics,
            self._quota,
            self._settings.gemini.quota,
            ctx.now,
            usage=self._usage,
            feedback=self._feedback,
        )
        await self._audit(message, ctx, "command.stats", {})
        return Notice(NoticeKind.INFO, stats.render(report, ctx.language))

    async def _forget(self, message: Incoming, ctx: CommandContext) -> Notice:
        count = await self._users.forget_user(message.platform.value, message.user_id, ctx.now)
        # The audit row says that an erasure happened, never what was erased.
        await self._audit(message, ctx, "command.forget", {"exchanges": count})
        log.info("user.forgotten", platform=message.platform.value, exchanges=count)
        return Notice(NoticeKind.INFO, text(ctx.language, "forget_done", count=count))

    async def _audit(
        self, message: Incoming, ctx: CommandContext, action: str, params: dict[str, object]
    ) -> None:
        await self._records.record_audit(
            [
                AuditRecord(
                    at=ctx.now,
                    platform=message.platform.value,
                    actor_id=message.user_id,
                    action=action,
                    params={**params, "admin": ctx.is_admin},
                )
            ]
        )

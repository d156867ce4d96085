"""The commands that change or show a chat's own settings and a user's use: /model, /persona, /settings,
/usage. Changing follows the /reset rule: anyone in a private chat, admins in groups and channels."""

from __future__ import annotations

from datetime import datetime

from bot.chat_settings import CUSTOM, MAX_CUSTOM_CHARS, OFF, ChatSettings, ChatSettingsBook
from bot.config import Settings
from bot.domain import Incoming, Notice, NoticeKind
from bot.guards.budgets import BudgetGuard, UsageReport
from bot.guards.filter import TextFilter
from bot.i18n import Language, format_wait, text
from bot.store import AuditRecord, Records

CHAT_COMMANDS = ("model", "persona", "settings", "usage")
_SWITCHES = {"search": "search", "thoughts": "show_thoughts"}


def usage_text(report: UsageReport, now: datetime, language: Language) -> str:
    """A user's messages and Gemini tokens today and this month against their budgets (as /usage shows)."""

    def tokens(used: int, limit: int, ends: datetime) -> str:
        used_text = text(language, "usage_tokens", count=used)
        if not limit:
            return text(language, "usage_no_budget", used=used_text)
        wait = format_wait((ends - now).total_seconds(), language)
        percent = min(100, round(used * 100 / limit))
        return text(language, "usage_budget", used=used_text, limit=limit, percent=percent, wait=wait)

    t = report.totals
    return text(
        language,
        "usage_report",
        day_messages=text(language, "usage_messages", count=t.day_messages),
        day_tokens=tokens(t.day_tokens, report.day_budget, report.day_ends),
        month_messages=text(language, "usage_messages", count=t.month_messages),
        month_tokens=tokens(t.month_tokens, report.month_budget, report.month_ends),
    )


def _info(message: str) -> Notice:
    return Notice(NoticeKind.INFO, message)


class ChatCommands:
    """Answers /model, /persona, /settings and /usage with one notice each."""

    def __init__(
        self,
        *,
        settings: Settings,
        book: ChatSettingsBook,
        budgets: BudgetGuard,
        records: Records,
        text_filter: TextFilter | None = None,
    ) -> None:
        self._settings = settings
        self._book = book
        self._budgets = budgets
        self._records = records
        self._filter = text_filter

    async def run(self, message: Incoming, language: Language, is_admin: bool, now: datetime) -> Notice:
        """Answer ``message.command`` (one of :data:`CHAT_COMMANDS`)."""
        name = (message.command or "").lower()
        if name == "usage":
            return await self._usage(message, language)
        args = message.command_args.strip()
        current = await self._book.get(message.platform.value, message.chat_key, message.thread_key)
        if not args:
            return self._show(name, message, current, language)
        if not (message.is_private or is_admin):
            return Notice(NoticeKind.FORBIDDEN, text(language, "settings_denied"))
        if name == "model":
            notice, changes = self._model(args, message, current, language)
        elif name == "persona":
            notice, changes = self._persona(args, message, current, language)
        else:
            notice, changes = self._switch(args, message, language)
        if changes:
            await self._book.change(
                message.platform.value, message.chat_key, message.thread_key, now, **changes
            )
            await self._audit(message, now, f"command.{name}", changes, is_admin)
        return notice

    def _show(self, name: str, message: Incoming, current: ChatSettings, language: Language) -> Notice:
        prefix = message.command_prefix
        if name == "model":
            return _info(text(language, "model_list", models=self._models(current), prefix=prefix))
        if name == "persona":
            return _info(
                text(language, "persona_list", personas=self._personas(current, language), prefix=prefix)
            )

        def state(value: bool | None) -> str:
            return text(language, "state_default" if value is None else "state_on" if value else "state_off")

        return _info(
            text(
                language,
                "settings_show",
                model=self._label(current.model),
                persona=self._persona_name(current, language),
                lang_name=text(language, "language_name"),
                search=state(current.search),
                thoughts=state(current.show_thoughts),
                prefix=prefix,
            )
        )

    def _label(self, model: str) -> str:
        label = self._settings.models.labels.get(model)
        return f"{label} ({model})" if label else model

    def _models(self, current: ChatSettings) -> str:
        return "\n".join(
            f"{'▶' if m == current.model else '•'} {self._label(m)}" for m in self._settings.chat_models
        )

    def _persona_name(self, current: ChatSettings, language: Language) -> str:
        if current.persona == OFF:
            return text(language, "persona_off_name")
        if current.persona == CUSTOM:
            return text(language, "persona_custom_name")
        return current.persona

    def _personas(self, current: ChatSettings, language: Language) -> str:
        lines = []
        for name, preset in self._settings.personas.items():
            mark = "▶" if name == current.persona else "•"
            lines.append(f"{mark} {name}" + (f" - {preset.description}" if preset.description else ""))
        if current.persona == CUSTOM:
            lines.append(f"▶ {text(language, 'persona_custom_name')}")
        return "\n".join(lines) or text(language, "persona_none_preset")

    def _model(
        self, args: str, message: Incoming, current: ChatSettings, language: Language
    ) -> tuple[Notice, dict[str, object]]:
        name = args.split(maxsplit=1)[0]
        if name not in self._settings.chat_models:
            return _info(text(language, "model_unknown", name=name, models=self._models(current))), {}
        return _info(text(language, "model_done", model=self._label(name))), {"model": name}

    def _persona(
        self, args: str, message: Incoming, current: ChatSettings, language: Language
    ) -> tuple[Notice, dict[str, object]]:
        word, _, rest = args.partition(" ")
        word = word.lower()
        if word == "off":
            return _info(text(language, "persona_off")), {"persona": OFF, "custom_instruction": None}
        if word == CUSTOM:
            return self._custom(rest.strip(), message, language)
        if word not in self._settings.personas:
            personas = self._personas(current, language)
            return _info(text(language, "persona_unknown", name=word, personas=personas)), {}
        return _info(text(language, "persona_done", name=word)), {"persona": word, "custom_instruction": None}

    def _custom(
        self, instruction: str, message: Incoming, language: Language
    ) -> tuple[Notice, dict[str, object]]:
        if not instruction:
            return _info(text(language, "persona_custom_empty", prefix=message.command_prefix)), {}
        if len(instruction) > MAX_CUSTOM_CHARS:
            too_long = text(
                language, "persona_custom_too_long", length=len(instruction), limit=MAX_CUSTOM_CHARS
            )
            return Notice(NoticeKind.TOO_LONG, too_long), {}
        if self._filter is not None and self._filter.check(instruction).flagged:
            return Notice(NoticeKind.FILTERED, text(language, "persona_custom_filtered")), {}
        done = text(language, "persona_custom_done", length=len(instruction))
        return _info(done), {"persona": CUSTOM, "custom_instruction": instruction}

    def _switch(self, args: str, message: Incoming, language: Language) -> tuple[Notice, dict[str, object]]:
        words = args.lower().split()
        if len(words) != 2 or words[0] not in _SWITCHES or words[1] not in ("on", "off"):
            return _info(text(language, "settings_usage", prefix=message.command_prefix)), {}
        switch, on = words[0], words[1] == "on"
        state = text(language, "state_on" if on else "state_off")
        done = text(language, "settings_done", switch=text(language, f"switch_{switch}"), state=state)
        return _info(done), {_SWITCHES[switch]: on}

    async def _usage(self, message: Incoming, language: Language) -> Notice:
        report = await self._budgets.report(message.platform.value, message.user_id)
        return _info(usage_text(report, self._budgets.now(), language))

    async def _audit(
        self, message: Incoming, now: datetime, action: str, changes: dict[str, object], is_admin: bool
    ) -> None:
        # The custom instruction is recorded by its length only, as every text.
        params = {
            k: (len(v) if k == "custom_instruction" and isinstance(v, str) else v) for k, v in changes.items()
        }
        record = AuditRecord(
            at=now,
            platform=message.platform.value,
            actor_id=message.user_id,
            action=action,
            params={**params, "admin": is_admin},
        )
        await self._records.record_audit([record])

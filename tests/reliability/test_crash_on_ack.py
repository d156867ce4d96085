"""SIGKILL right after the last acknowledgement: every acknowledged update or event is in the inbox.

Telegram (webhook mode) and Slack (http mode) do not deliver again what they got a 200 for. ``gembot run``
gets Telegram updates on its webhook (each chat's next update once the previous was acknowledged, as
Telegram sends them; the chats in parallel) and Slack events, Gemini answers slowly, and the moment the
last delivery is acknowledged the process is killed (SIGKILL: no cleanup). Every acknowledged message
must then be in the inbox, and after a restart on the same database get exactly one answer: a reply
shown before the kill, or the "please send it again" notice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.fakes import slack as slack_api
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.telegram import TelegramEmulator
from tests.reliability import conftest as harness
from tests.reliability.test_crash import answer_owners, event_id

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SECRET = "crash-on-ack-Secret_1"
PER_CHAT = 2


def _recorded(db: Path) -> set[str]:
    return {event for (event,) in harness.db_rows(db, "SELECT event_id FROM inbox")}


async def test_a_sigkill_right_after_the_acknowledgements_loses_no_update(tmp_path: Path) -> None:
    telegram_chats = harness.SIZE.crash_users * 5  # 150 chats x 2 = 300 updates at the CI size
    slack_dms = harness.SIZE.crash_users * 2
    async with (
        GeminiEmulator(api_key=API_KEY, latency=3.0) as gemini,
        TelegramEmulator() as tg,
        slack_api.SlackEmulator() as slack,
    ):
        config = harness.bot_config(tmp_path, gemini, tg=tg, slack=slack)
        config["gemini"].update({"read_timeout": "10s", "timeout": "20s"})
        bot = harness.Gembot(tmp_path, config)
        config["telegram"].update(
            {"mode": "webhook", "webhook_url": f"{bot.url}/telegram/webhook", "webhook_secret": SECRET}
        )
        await bot.start()
        sent: list[harness.Sent] = []
        acknowledged: list[harness.Sent] = []

        async def telegram_chat(n: int) -> None:
            user = tg.user(400_000 + n, f"Ack{n}")
            chat = tg.private_chat(user)
            for i in range(PER_CHAT):
                label = harness.tag("tg", n, i)
                update = tg.message_update(chat, user, label)
                message = update["message"]
                item = harness.Sent(
                    label, ("telegram", chat["id"], None), label, message_id=message["message_id"]
                )
                sent.append(item)
                if await tg.post_update(update) != 200:
                    return  # not acknowledged: Telegram would deliver it again; this chat stops here
                acknowledged.append(item)

        async def slack_dm(sender: slack_api.EventSender, n: int) -> None:
            channel = f"DACK{n:05d}"
            for i in range(PER_CHAT):
                label, ts = harness.tag("sl", n, i), slack_api.new_ts()
                item = harness.Sent(label, ("slack", channel, None), label, ts=ts)
                sent.append(item)
                status, _ = await sender.event(
                    slack_api.message_event(label, channel=channel, user=f"U{n:06d}", ts=ts)
                )
                if status != 200:
                    return
                acknowledged.append(item)

        async with slack_api.EventSender(f"{bot.url}/slack/events") as sender:
            started = time.monotonic()
            await asyncio.gather(
                *(telegram_chat(n) for n in range(telegram_chats)),
                *(slack_dm(sender, n) for n in range(slack_dms)),
            )
            await bot.kill()
            delivery_s = time.monotonic() - started
            recorded = _recorded(bot.db_path)
            missing = [s.tag for s in acknowledged if event_id(s) not in recorded]
            answered_before = harness.tally(acknowledged, tg, slack, positional=False)

            gemini.latency = 0.0
            await bot.start()
            conversations = {s.conversation for s in acknowledged}

            def settled() -> bool:
                shown = [m for c in conversations for m in harness.conversation_answers(tg, slack, c)]
                received = harness.db_rows(
                    bot.db_path, "SELECT count(*) FROM inbox WHERE status = 'received'"
                )
                return all(harness.finished(m) for m in shown) and received[0][0] == 0

            await harness.wait_until(settled, within=30)
            owners = answer_owners(bot.db_path, acknowledged)
            await harness.wait_until(
                lambda: (
                    not harness.tally(acknowledged, tg, slack, positional=False, listed=owners).unanswered
                ),
                within=15,
            )
            after = harness.tally(acknowledged, tg, slack, positional=False, listed=owners)
        status = await bot.stop()
    figures: dict[str, Any] = {
        "telegram_updates_acknowledged": sum(1 for s in acknowledged if s.conversation[0] == "telegram"),
        "slack_events_acknowledged": sum(1 for s in acknowledged if s.conversation[0] == "slack"),
        "not_acknowledged": len(sent) - len(acknowledged),
        "telegram_acknowledged_not_recorded": sum(1 for t in missing if t.startswith("q-tg")),
        "slack_acknowledged_not_recorded": sum(1 for t in missing if t.startswith("q-sl")),
        "answered_before_kill": sum(1 for n in answered_before.answers.values() if n),
        "unanswered_after_restart": len(after.unanswered),
        "answered_twice": len(after.duplicated),
        "delivery_s": round(delivery_s, 2),
    }
    harness.report("crash_on_ack", figures)
    assert status == 0, bot.log()[-5000:]
    assert len(acknowledged) == len(sent), figures  # nothing refused: the inbox was up throughout
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged messages not in the inbox"
    assert after.unanswered == [], after.unanswered[:10]
    assert after.duplicated == [], after.duplicated[:10]
    assert "Traceback" not in bot.log(), bot.log()[-5000:]

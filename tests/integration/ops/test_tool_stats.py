"""Gemini's tool use in /stats, the metrics and the audit log (which tools, how often; never a query)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from bot import stats
from bot.domain import FinalAnswer
from bot.store.models import AuditRow
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.grounded_cases import CODE, ENGLISH, FAILED_URL
from tests.helpers import collect, incoming, terminal

TOOLS = {"gemini": {"tools": {"google_search": True, "url_context": True, "code_execution": True}}}


async def test_tool_use_is_counted_and_audited_without_the_queries(
    app_factory: Callable[..., Any], gemini: GeminiEmulator
) -> None:
    app = await app_factory(**TOOLS)
    for n, reply in enumerate([ENGLISH.reply, CODE, FAILED_URL]):
        gemini.script(reply)
        assert isinstance(
            terminal(await collect(app, incoming("q", user=f"u{n}", chat=f"c{n}"))), FinalAnswer
        )
    now = app.clock.now()
    report = await stats.collect(app.store.statistics, app.store.quota, app.settings.gemini.quota, now)
    assert report.windows[0].tool_calls == {"google_search": 2, "code_execution": 1, "url_context": 2}
    assert "tools: 2 searches, 2 links read, 1 code run" in stats.render(report, "en")
    assert "工具：搜索 2，读取链接 2，运行代码 1" in stats.render(report, "zh")
    metrics = app.metrics.render().decode()
    assert 'gembot_tool_calls_total{tool="google_search"} 2.0' in metrics
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(AuditRow.action, AuditRow.params))).all()
    generate = [json.loads(params) for action, params in rows if action == "gemini.generate"]
    assert generate[0]["tools"] == ["code_execution", "google_search", "url_context"]
    assert generate[0]["tool_calls"] == {"google_search": 2}
    assert all("Norway" not in str(params) and "broken.example" not in str(params) for _, params in rows)

"""Operator errors from Gemini (wrong model, unsupported region, a generation config the model refuses, the
API not enabled): the user is told the bot is misconfigured, the admins are alerted, nothing is retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.domain import NoticeKind
from bot.i18n import text
from tests.fakes.clock import FakeClock
from tests.fakes.gemini import ErrorReply
from tests.fakes.gemini import GeminiEmulator as Emulator
from tests.helpers import answer_text, collect, incoming, notice_kind, terminal
from tests.integration.resilience.conftest import AppMaker, calls, turns

LITE = "gemini-2.5-flash-lite"
CASES: list[Any] = [
    pytest.param({"model": "gemini-1.5-flash"}, None, (404, "NOT_FOUND"), id="wrong-model"),
    pytest.param({}, ErrorReply.unsupported_location(), (400, "FAILED_PRECONDITION"), id="region"),
    pytest.param(
        {"model": "gemini-2.5-pro", "generation": {"thinking_budget": 0}},
        None,
        (400, "INVALID_ARGUMENT"),
        id="thinking-budget",
    ),
    pytest.param({}, ErrorReply.api_disabled(), (403, "PERMISSION_DENIED"), id="api-disabled"),
]


@pytest.mark.parametrize(("gemini_config", "reply", "status"), CASES)
async def test_an_operator_error_tells_the_user_and_alerts_the_admins_without_a_retry(
    make_app: AppMaker,
    gemini: Emulator,
    clock: FakeClock,
    db_path: Path,
    gemini_config: dict[str, Any],
    reply: ErrorReply | None,
    status: tuple[int, str],
) -> None:
    healthy: App = await make_app()
    for said in ("one", "two"):  # history to drop, so that a "shorter context" retry would show
        await collect(healthy, incoming(said))
    gemini.requests.clear()
    app: App = await make_app(gemini=gemini_config)
    if reply is not None:
        gemini.script(reply, reply)
    end = terminal(await collect(app, incoming("three")))
    assert end.kind is NoticeKind.MISCONFIGURED
    assert end.text == text("en", "misconfigured")
    assert len(gemini.requests) == 1  # not retried, not with a shorter context
    assert clock.sleeps == []
    assert [(c.http_status, c.gemini_status) for c in calls(db_path)][-1] == status
    zh = terminal(await collect(app, incoming("四", language="zh-CN")))
    assert zh.text == text("zh", "misconfigured")
    await app.alerts.drain()
    assert [a.kind for a in app.alerts.published] == ["gemini_misconfigured"]  # at most one per 10 min
    assert f"HTTP {status[0]}" in app.alerts.published[0].text
    assert [t[0] for t in turns(db_path)] == ["one", "two"]


@pytest.mark.parametrize(
    "gemini_config",
    [{"model": "gemini-1.5-flash"}, {"model": "gemini-2.5-pro", "generation": {"thinking_budget": 0}}],
    ids=["wrong-model", "thinking-budget"],
)
async def test_a_model_the_config_does_not_fit_falls_back_to_the_next_model_and_alerts(
    make_app: AppMaker, gemini: Emulator, db_path: Path, gemini_config: dict[str, Any]
) -> None:
    app: App = await make_app(gemini={**gemini_config, "fallback_models": [LITE]})
    assert answer_text(await collect(app, incoming("hi"))) == "echo: hi"
    assert [r.model for r in gemini.requests] == [gemini_config["model"], LITE]
    await app.alerts.drain()
    assert [a.kind for a in app.alerts.published] == ["gemini_misconfigured"]
    assert gemini_config["model"] in app.alerts.published[0].text
    assert turns(db_path)[0][3] == LITE


async def test_a_plain_permission_denial_is_still_a_bad_key(make_app: AppMaker, gemini: Emulator) -> None:
    app: App = await make_app()
    gemini.script(ErrorReply.permission_denied())
    assert notice_kind(await collect(app, incoming("hi"))) is NoticeKind.BAD_KEY

"""/metrics after emulated traffic through a real App, engine and HttpServer: counters and histograms
match what happened (the emulator's request log and the llm_calls rows)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.domain import Platform
from bot.observability.metrics import (
    ANSWERED,
    COMMAND,
    DUPLICATE,
    ERROR,
    FILTERED,
    QUOTA,
    RATE_LIMITED,
    REJECTED,
    message_outcome,
)
from bot.quota_windows import window_key
from tests.fakes.gemini import ErrorReply, GeminiEmulator, PromptBlocked, Reply
from tests.helpers import collect, incoming
from tests.integration.ops.conftest import Served, total, value

MODEL = "gemini-2.5-flash"


async def emulate_traffic(served: Served, gemini: GeminiEmulator) -> None:
    """The traffic whose effects the tests count by hand (one Gemini attempt per message)."""
    app = served.app
    gemini.script(
        Reply(),  # u1
        Reply(),  # u2
        Reply(latency=1.6),  # u3: the one slow call, in the (1.5, 2] bucket
        Reply(usage={"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}),  # s1 (Slack)
        Reply(),  # limited's first message
        ErrorReply.server_error(500),  # e1
        ErrorReply.rate_limited("37s"),  # q1
        PromptBlocked(),  # b1
    )
    for user in ("u1", "u2", "u3"):
        await collect(app, incoming("hi", user=user, chat=user))
    await collect(app, incoming("hi", user="s1", chat="s1", platform=Platform.SLACK))
    await collect(app, incoming("first", user="limited", chat="limited"))
    await collect(app, incoming("second", user="limited", chat="limited"))  # rate limited: no Gemini call
    await collect(app, incoming("boom", user="e1", chat="e1"))
    await collect(app, incoming("busy", user="q1", chat="q1"))
    await collect(app, incoming("blocked", user="b1", chat="b1"))
    await collect(app, incoming(command="help", user="c1", chat="c1"))
    twice = incoming(command="help", user="c2", chat="c2", event_id="same-event")
    await collect(app, twice)
    await collect(app, twice)  # delivered again: a duplicate
    await collect(app, incoming("not for us", user="g1", chat="-9", private=False, addressed=False))
    assert gemini.pending() == 0


def llm_calls(db_path: Path) -> list[tuple[str, int | None, float, int, int]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT outcome, http_status, latency_ms, prompt_tokens, output_tokens FROM llm_calls ORDER BY id"
        ).fetchall()


async def test_message_counters_match_the_traffic(served: Served, gemini: GeminiEmulator) -> None:
    await emulate_traffic(served, gemini)
    s = await served.samples()
    name = "gembot_messages_total"
    expected = {
        ("telegram", ANSWERED): 4,
        ("slack", ANSWERED): 1,
        ("telegram", RATE_LIMITED): 1,
        ("telegram", ERROR): 1,
        ("telegram", QUOTA): 1,
        ("telegram", FILTERED): 1,
        ("telegram", COMMAND): 2,
        ("telegram", DUPLICATE): 1,
    }
    for (platform, outcome), count in expected.items():
        assert total(s, name, platform=platform, outcome=outcome) == count, (platform, outcome)
    assert total(s, name) == sum(expected.values())  # the unaddressed group message is not counted
    # The engine's own outcome stays visible in the detail label.
    assert value(s, name, platform="telegram", outcome=ERROR, detail="gemini_server") == 1
    assert value(s, name, platform="telegram", outcome=QUOTA, detail="gemini_rate_limited") == 1
    assert value(s, name, platform="telegram", outcome=FILTERED, detail="gemini_prompt_blocked") == 1
    assert value(s, "gembot_refusals_total", reason="rate_limit_user") == 1
    assert value(s, "gembot_inflight_conversations") == 0


async def test_gemini_requests_latency_and_tokens_match_the_calls(
    served: Served, gemini: GeminiEmulator, db_path: Path
) -> None:
    await emulate_traffic(served, gemini)
    s = await served.samples()
    rows = llm_calls(db_path)
    generate_calls = [r for r in gemini.requests if r.action in ("generateContent", "streamGenerateContent")]
    assert len(rows) == len(generate_calls) == 8

    requests = "gembot_gemini_requests_total"
    assert total(s, requests) == 8
    assert total(s, requests, model=MODEL, endpoint=f"127.0.0.1:{gemini.port}") == 8
    assert total(s, requests, outcome="ok", http_status="200") == 5
    assert total(s, requests, outcome="server", http_status="500") == 1
    assert total(s, requests, outcome="rate_limited", http_status="429") == 1
    assert total(s, requests, outcome="prompt_blocked") == 1

    hist = "gembot_gemini_latency_seconds"
    assert value(s, f"{hist}_count", model=MODEL) == 8
    assert value(s, f"{hist}_sum", model=MODEL) == pytest.approx(sum(r[2] for r in rows) / 1000, rel=1e-6)
    assert value(s, f"{hist}_bucket", model=MODEL, le="1.5") == 7
    assert value(s, f"{hist}_bucket", model=MODEL, le="2.0") == 8
    assert value(s, f"{hist}_bucket", model=MODEL, le="+Inf") == 8

    assert value(s, "gembot_gemini_tokens_total", direction="in") == sum(r[3] for r in rows)
    assert value(s, "gembot_gemini_tokens_total", direction="out") == sum(r[4] for r in rows)
    assert sum(r[3] for r in rows) >= 11 and sum(r[4] for r in rows) >= 7


async def test_inflight_gauge_counts_answers_being_produced(served: Served, gemini: GeminiEmulator) -> None:
    gemini.script(Reply(latency=1.0), Reply(latency=1.0))
    answers = [
        asyncio.create_task(collect(served.app, incoming("slow", user=f"w{i}", chat=f"w{i}")))
        for i in range(2)
    ]
    for _ in range(100):
        if value(await served.samples(), "gembot_inflight_conversations") == 2:
            break
        await asyncio.sleep(0.02)
    assert value(await served.samples(), "gembot_inflight_conversations") == 2
    await asyncio.gather(*answers)
    assert value(await served.samples(), "gembot_inflight_conversations") == 0


async def test_every_exported_name_has_the_gembot_prefix_and_no_percentiles(served: Served) -> None:
    status, body = await served.get("/metrics")
    assert status == 200
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(body))
    ours = [f for f in families if not f.name.startswith("process_")]
    assert ours and all(f.name.startswith("gembot_") for f in ours)
    assert all(f.type in ("counter", "gauge", "histogram") for f in ours)  # no summaries/quantiles
    names = {f.name for f in ours}
    assert {
        "gembot_messages",
        "gembot_gemini_requests",
        "gembot_gemini_latency_seconds",
        "gembot_gemini_tokens",
        "gembot_quota_used",
        "gembot_quota_limit",
        "gembot_inflight_conversations",
        "gembot_adapter_reconnects",
    } <= names
    # Quota series exist from the start (zeros rather than gaps on a dashboard).
    s = await served.samples()
    for window in ("minute", "day", "month"):
        assert ("gembot_quota_used", frozenset({("window", window)})) in s


@pytest.mark.parametrize(
    ("detail", "outcome"),
    [
        ("answered", ANSWERED),
        ("filtered", FILTERED),
        ("reply_filtered", FILTERED),
        ("gemini_prompt_blocked", FILTERED),
        ("gemini_response_blocked", FILTERED),
        ("rate_limited", RATE_LIMITED),
        ("gemini_rate_limited", QUOTA),
        ("gemini_quota", QUOTA),
        ("gemini_server", ERROR),
        ("gemini_timeout", ERROR),
        ("gemini_circuit_open", ERROR),
        ("gemini_bad_key", ERROR),
        ("error", ERROR),
        ("command", COMMAND),
        ("duplicate", DUPLICATE),
        ("not_allowed", REJECTED),
        ("unsupported", REJECTED),
        ("empty", REJECTED),
        ("too_long", REJECTED),
    ],
)
def test_engine_outcomes_map_to_stable_labels(detail: str, outcome: str) -> None:
    assert message_outcome(detail) == outcome


async def test_quota_gauges_are_read_from_the_database_at_each_scrape(served: Served) -> None:
    """Another replica's requests (or a window that rolled over) show at the next scrape, not only when
    this process counts a request itself."""
    served.server.add_metrics_refresh(served.app.refresh_quota_gauges)
    now = served.app.clock.now()
    keys = {window: window_key(window, now) for window in ("minute", "day", "month")}
    await served.app.store.quota.quota_take(keys, {}, 3)  # counted elsewhere, as by another replica
    samples = await served.samples()
    for window in ("minute", "day", "month"):
        assert value(samples, "gembot_quota_used", window=window) == 3

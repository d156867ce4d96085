"""The /stats text, from figures: counted things in their plural forms, in every language."""

from __future__ import annotations

from dataclasses import replace

from bot import stats
from bot.store import Satisfaction


def report(conversations: int, users: int) -> stats.StatsReport:
    window = stats.WindowStats(
        name="1h",
        messages_answered=1,
        messages_failed=0,
        requests=1,
        successes=1,
        p50_ms=900.0,
        p90_ms=900.0,
        p95_ms=900.0,
        errors={},
        active_conversations=conversations,
        active_users=users,
        tokens_in=10,
        tokens_out=20,
    )
    return stats.StatsReport(windows=[window], quota=[stats.QuotaUse("day", 1, 100)])


def test_one_conversation_and_one_user_are_singular() -> None:
    assert "active: 1 conversation, 1 user\n" in stats.render(report(1, 1), "en")
    assert "active: 2 conversations, 3 users\n" in stats.render(report(2, 3), "en")
    assert "活跃：对话 1，用户 1\n" in stats.render(report(1, 1), "zh")


def test_the_report_reads_the_same_as_before_in_both_languages() -> None:
    assert stats.render(report(2, 3), "en") == (
        "📊 gembot stats\n\n[1h] answered 1, failed 0\nGemini requests 1, success 100.0%\n"
        "latency P50 900ms / P90 900ms / P95 900ms\nerrors: none\n"
        "refused: filter 0, rate limit 0, quota 0, budget 0\n"
        "active: 2 conversations, 3 users\ntokens: 10 in, 20 out; summary requests 0\n\nquota: day 1/100"
    )
    assert stats.render(report(2, 3), "zh") == (
        "📊 gembot 统计\n\n【1h】回答 1，失败 0\nGemini 请求 1，成功率 100.0%\n"
        "延迟 P50 900ms / P90 900ms / P95 900ms\n错误：无\n拒绝：过滤 0，限速 0，配额 0，预算 0\n"
        "活跃：对话 2，用户 3\ntokens：入 10，出 20；摘要请求 0\n\n配额：day 1/100"
    )


def test_satisfaction_shows_the_thumbs_up_share_and_counts_per_window() -> None:
    votes = {"24h": Satisfaction(up=3, down=1), "30d": Satisfaction()}
    text = stats.render(replace(report(1, 1), satisfaction=votes), "en")
    assert text.endswith("satisfaction [24h]: 👍 75% (3 👍, 1 👎)\nsatisfaction [30d]: no votes")
    zh = stats.render(replace(report(1, 1), satisfaction=votes), "zh")
    assert zh.endswith("满意度 [24h]：👍 75%（👍 3，👎 1）\n满意度 [30d]：暂无评价")

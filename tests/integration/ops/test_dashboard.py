"""docs/grafana-dashboard.json only uses metrics gembot exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.fakes.gemini import GeminiEmulator
from tests.helpers import collect, incoming
from tests.integration.ops.conftest import Served

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\bgembot_[a-z0-9_]+")


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


async def test_every_metric_in_the_dashboard_is_exported(served: Served, gemini: GeminiEmulator) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = expressions(dashboard)
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(exprs) >= 10 and len(used) >= 8
    # Some traffic, and what an adapter does on a reconnect, so every labelled series has a sample.
    await collect(served.app, incoming("hi"))
    served.app.metrics.adapter_reconnects.labels("telegram").inc()
    served.app.metrics.refusals.labels("rate_limit_user").inc()
    served.app.metrics.feedback.labels("slack", "up").inc()
    served.app.metrics.inline_queries.labels("answered").inc()
    exported = {name for name, _ in await served.samples()}
    assert used <= exported, sorted(used - exported)
    # Percentiles come from the histogram, never from pre-computed quantiles.
    assert any("histogram_quantile(0.95" in e for e in exprs)


def test_the_panels_share_the_data_source_and_tile_without_overlapping() -> None:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in panels:
        assert panel["datasource"] == source, panel["title"]
        assert all(t["datasource"] == source for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in cells, (panel["title"], cells[cell])
            cells[cell] = panel["title"]


def test_votes_and_inline_queries_have_their_panels() -> None:
    exprs = expressions(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    for metric in ("gembot_feedback_total", "gembot_inline_queries_total", "gembot_inline_chosen_total"):
        assert any(metric in e for e in exprs), metric
    # The satisfaction ratio: up votes over up and down votes, withdrawn ones left out.
    assert any(
        'gembot_feedback_total{value="up"}' in e and 'gembot_feedback_total{value=~"up|down"}' in e
        for e in exprs
    )

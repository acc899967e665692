"""docs/grafana-dashboard.json stays in step with the metrics kop_fast exports."""

import json
import re
from pathlib import Path

from kop_fast.config import build_settings
from kop_fast.server.metrics import Metrics
from kop_fast.server.node import KafkaNode
from kop_fast.storage.memory import MemoryStorage

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
# Sample suffixes Prometheus adds to counters and histograms.
_SUFFIX = re.compile(r"_(total|bucket|sum|count)$")


def exported_names() -> set[str]:
    node = KafkaNode(build_settings({"listen": "127.0.0.1:0"}, environ={}), MemoryStorage(), "cluster")
    registry = Metrics(node).registry
    return {_SUFFIX.sub("", sample.name) for family in registry.collect() for sample in family.samples} | {
        family.name for family in registry.collect()}


def test_every_metric_the_dashboard_queries_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {_SUFFIX.sub("", name) for expr in exprs for name in re.findall(r"\bkop_fast_\w+", expr)}
    assert len(used) >= 8
    assert used - exported_names() == set()

"""etc/grafana/storaged.json and etc/prometheus/storaged-alerts.yml.

Every metric they name is one storaged exposes; the dashboard has what a
Grafana import needs (a schema written from Grafana's dashboard JSON model);
the rules are Prometheus alerting rules, checked by ``promtool check rules``
when promtool is installed (Debian's ``prometheus`` package).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.unit.common.test_metrics_docs import exposed_names

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "etc", "grafana", "storaged.json")
ALERTS = os.path.join(ROOT, "etc", "prometheus", "storaged-alerts.yml")

# A histogram's series: <name>_bucket, _count, _sum.
_SERIES_SUFFIXES = ("_bucket", "_count", "_sum")

_DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string"}},
}
_GRID_POS = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
    },
}
_PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"enum": ["row", "timeseries", "stat", "table", "gauge",
                          "bargauge", "heatmap", "text"]},
        "title": {"type": "string", "minLength": 1},
        "gridPos": _GRID_POS,
        "datasource": _DATASOURCE,
        "targets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["refId", "expr"],
                "properties": {
                    "refId": {"type": "string", "minLength": 1},
                    "expr": {"type": "string", "minLength": 1},
                    "legendFormat": {"type": "string"},
                },
            },
        },
    },
    "if": {"properties": {"type": {"const": "row"}}},
    "then": {"required": ["panels", "collapsed"]},
    "else": {"required": ["datasource", "targets"],
             "properties": {"targets": {"minItems": 1}}},
}
#: What a Grafana import reads (its dashboard JSON model): the title, the
#: schema version it migrates from, panels with a type, a place on the
#: 24-column grid and their queries, the template variables.
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time",
                 "version", "editable"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "id": {"type": "null"},  # an import gets a new id
        "schemaVersion": {"type": "integer", "minimum": 30},
        "version": {"type": "integer"},
        "editable": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "time": {"type": "object", "required": ["from", "to"]},
        "refresh": {"type": "string"},
        "panels": {"type": "array", "minItems": 1, "items": _PANEL},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "type"],
                "properties": {"name": {"type": "string"},
                               "type": {"enum": ["datasource", "query", "custom",
                                                 "interval", "constant"]}},
            }}},
        },
    },
}


def _dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def _alerts():
    with open(ALERTS) as f:
        return yaml.safe_load(f)


def _metric_names(expr):
    names = set()
    for name in re.findall(r"\bstoraged_[a-z0-9_]+", expr):
        for suffix in _SERIES_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names


def _dashboard_exprs():
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", ())]


def _alert_exprs():
    return [r["expr"] for g in _alerts()["groups"] for r in g["rules"]]


def test_the_dashboard_has_what_an_import_needs():
    dash = _dashboard()
    jsonschema.validate(dash, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", ())]
        assert len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    used = set(re.findall(r"\$\{?([a-z_]+)", json.dumps(dash["panels"])))
    assert used <= variables


def test_the_dashboard_covers_the_four_views():
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Cluster overview", "Sync lag", "Cache efficiency", "API latency"]


@pytest.mark.parametrize("where", ["dashboard", "alerts"])
def test_every_metric_named_exists(where):
    exprs = _dashboard_exprs() if where == "dashboard" else _alert_exprs()
    named = set().union(*(_metric_names(e) for e in exprs))
    assert named, where
    assert named - exposed_names() == set()


def test_the_alerts_cover_what_the_issue_asks():
    rules = [r for g in _alerts()["groups"] for r in g["rules"]]
    assert all({"alert", "expr", "labels", "annotations"} <= set(r) for r in rules)
    by_name = {r["alert"]: r["expr"] for r in rules}
    assert "storaged_sync_max_seconds_behind" in by_name["StoragedSyncPointStuck"]
    assert "storaged_last_success_timestamp_seconds" in by_name[
        "StoragedLastSuccessTooOld"]
    assert "storaged_cache_max_size_bytes" in by_name["StoragedCacheOverLimit"]
    assert "storaged_coordination_last_heartbeat_timestamp_seconds" in by_name[
        "StoragedHeartbeatLost"]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian package prometheus)")
def test_promtool_checks_the_rules():
    done = subprocess.run(["promtool", "check", "rules", ALERTS],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian package prometheus)")
def test_the_dashboard_queries_are_promql(tmp_path):
    # Each query as a recording rule, with the variables as Grafana fills them.
    rules = [
        {"record": "storaged:dashboard_query_%d" % i,
         "expr": expr.replace("$instance", ".*").replace("${datasource}", "")}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

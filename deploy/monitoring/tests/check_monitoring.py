#!/usr/bin/env python3
"""Checks the monitoring pack beyond what `promtool test rules` proves.

Run by `make monitoring-test` (deploy/monitoring/test.sh) with the project venv's Python
(PyYAML) and the pinned promtool:

    check_monitoring.py --promtool PATH

It fails when:
- an alert the runbook promises is missing from rules.yaml, or lacks a severity label, a
  summary, a description with a template value, or a runbook_url whose anchor is a section
  of docs/runbook.md;
- prometheus-rule.yaml is not a PrometheusRule carrying exactly the groups of rules.yaml;
- an alert has no unit test in tests/*.yaml that expects it to fire AND one that expects
  it quiet;
- a rule, an annotation query or a dashboard query names a metric that neither the
  inference pod (docs/inference-pod.md, "Metrics") nor the operator contract
  (docs/runbook.md, "Metrics the alerts need") lists, nor a recording rule defines;
- the dashboard JSON does not parse, lacks the datasource variable or a required panel's
  metric, a query does not use the datasource variable, or a query is not valid PromQL
  (checked by promtool with Grafana's variables filled in).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MONITORING = HERE.parent
REPO = MONITORING.parent.parent
RUNBOOK = REPO / "docs" / "runbook.md"
POD_DOC = REPO / "docs" / "inference-pod.md"
RUNBOOK_BASE = "https://github.com/kube-ocr/kube-ocr/blob/main/docs/runbook.md#"

REQUIRED_ALERTS = {
    "OcrServiceDown",
    "OcrGpuMemoryHigh",
    "OcrGpuTemperatureHigh",
    "OcrGoldenAccuracyLow",
    "OcrLatencyP95High",
    "OcrErrorRateHigh",
    "OcrRollbackHappened",
    "OcrSharedCacheUnavailable",
    "OcrJobsBacklogGrowing",
    "OcrJobsOlderThanSlo",
}
SEVERITIES = {"critical", "warning", "info"}
# Metrics Prometheus itself writes for every target.
PROMETHEUS_BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# What the dashboard must show (each by at least one query naming the metric).
DASHBOARD_REQUIRED_METRICS = {
    "ocr_requests_total",  # request rate by code
    "ocr_request_duration_seconds_bucket",  # P95 total
    "ocr_phase_duration_seconds_bucket",  # P95 by phase
    "ocr_batch_size_bucket",  # batch size
    "ocr_queue_depth",
    "ocr_in_flight_requests",
    "ocr_gpu_memory_used_bytes",
    "ocr_gpu_memory_total_bytes",
    "ocr_gpu_utilization_ratio",
    "ocr_operator_golden_accuracy",
    "ocr_operator_canary_weight",
    "ocr_cache_hits_total",
    "ocr_cache_misses_total",
    "ocr_shared_cache_lookups_total",  # shared cache hits, misses, skips, errors
    "ocr_shared_cache_available",
    "ocr_pages_total",
    "ocr_lines_total",
    "ocr_jobs_queued",  # jobs: backlog per service
    "ocr_jobs_pending",
    "ocr_jobs_oldest_age_seconds",  # oldest job against its objective
    "ocr_jobs_slo_seconds",
    "ocr_jobs_submitted_total",
    "ocr_jobs_finished_total",
    "ocr_jobs_claimed_total",
    "ocr_jobs_released_total",
    "ocr_jobs_running",
}

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "inf", "nan", "start", "end",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (Grafana variables allowed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges, subqueries
    s = GROUPING.sub(" ", s)  # label lists
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def self_test() -> None:
    cases = {
        'sum by (code) (rate(ocr_requests_total{namespace=~"$namespace", code=~"A|B"}[$__rate_interval]))': {"ocr_requests_total"},
        "histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m]))) > on (a, b) group_left () y:z:rec": {"x_bucket", "y:z:rec"},
        "max by (a) (up{job=\"j\"} == 0) or on (a) vector(1) unless ignoring (b) foo offset 5m": {"up", "foo"},
        "0 * group by (a) (c_count) + 1e3": {"c_count"},
    }
    for expr, want in cases.items():
        got = metric_names(expr)
        assert got == want, f"metric_names({expr!r}) = {got}, want {want}"


class Failures(list):
    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def doc_section(path: Path, heading: str) -> str:
    text = path.read_text()
    m = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    if not m:
        raise SystemExit(f"{path}: no section '{heading}'")
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_metrics(section: str) -> set[str]:
    """Metric names in the first column of a markdown table, with histogram series."""
    names = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        found = re.findall(r"`([a-z_:][a-z0-9_:]*)(?:\{[^`]*\})?`", cells[0])
        is_histogram = any("histogram" in c for c in cells[1:])
        for name in found:
            names.add(name)
            if is_histogram:
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def github_anchor(heading: str) -> str:
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--promtool", required=True)
    args = parser.parse_args()
    self_test()
    fail = Failures()

    # Known metrics.
    pod_metrics = table_metrics(doc_section(POD_DOC, "Metrics"))
    operator_metrics = {m for m in table_metrics(doc_section(RUNBOOK, "Metrics the alerts need")) if m.startswith("ocr_operator_")}
    fail.check(len(pod_metrics) > 20, f"found only {len(pod_metrics)} metrics in {POD_DOC}")
    fail.check(len(operator_metrics) >= 5, f"found only {sorted(operator_metrics)} in the runbook's contract")

    # Rules.
    rules_doc = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    rules = [r for g in rules_doc["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    known = pod_metrics | operator_metrics | recorded | PROMETHEUS_BUILTIN
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    fail.check(REQUIRED_ALERTS <= alerts.keys(), f"alerts missing from rules.yaml: {sorted(REQUIRED_ALERTS - alerts.keys())}")

    runbook_anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)}
    for name, rule in alerts.items():
        labels, ann = rule.get("labels", {}), rule.get("annotations", {})
        fail.check(labels.get("severity") in SEVERITIES, f"{name}: severity label not one of {sorted(SEVERITIES)}")
        fail.check(bool(ann.get("summary")), f"{name}: no summary")
        fail.check("{{" in ann.get("description", ""), f"{name}: description has no template value")
        url = ann.get("runbook_url", "")
        fail.check(url.startswith(RUNBOOK_BASE), f"{name}: runbook_url {url!r} does not point into docs/runbook.md")
        anchor = url.removeprefix(RUNBOOK_BASE)
        fail.check(anchor == name.lower(), f"{name}: runbook anchor {anchor!r} is not #{name.lower()}")
        fail.check(anchor in runbook_anchors, f"{name}: docs/runbook.md has no section #{anchor}")
    for rule in rules:
        what = rule.get("alert") or rule.get("record")
        exprs = [rule["expr"]]
        for text in rule.get("annotations", {}).values():
            exprs += re.findall(r"printf `([^`]*)`", text)
        for expr in exprs:
            unknown = metric_names(expr) - known
            fail.check(not unknown, f"{what}: unknown metrics {sorted(unknown)}")

    # The PrometheusRule carries the same groups.
    cr = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    fail.check(cr.get("apiVersion") == "monitoring.coreos.com/v1" and cr.get("kind") == "PrometheusRule",
               "prometheus-rule.yaml is not a monitoring.coreos.com/v1 PrometheusRule")
    fail.check(cr.get("metadata", {}).get("name") == "kube-ocr", "the PrometheusRule is not named kube-ocr")
    fail.check(cr.get("spec") == rules_doc, "prometheus-rule.yaml's spec differs from rules.yaml: run make generate")

    # A unit test that fires and one that stays quiet, per alert.
    fires, quiet = set(), set()
    for test_file in sorted(HERE.glob("*.yaml")):
        doc = yaml.safe_load(test_file.read_text())
        fail.check(doc.get("rule_files") == ["../rules.yaml"], f"{test_file.name}: rule_files is not [../rules.yaml]")
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name in alerts:
        fail.check(name in fires, f"{name}: no unit test expects it to fire")
        fail.check(name in quiet, f"{name}: no unit test expects it quiet")

    # Dashboard.
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    fail.check(dash.get("schemaVersion", 0) >= 39, "dashboard schemaVersion below 39")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    fail.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "no Prometheus datasource variable")
    queries, used = [], set()
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p.get("id"))
            walk(p.get("panels", []))
            if p.get("type") == "row":
                continue
            fail.check("gridPos" in p, f"panel {p.get('title')!r}: no gridPos")
            targets = p.get("targets", [])
            fail.check(bool(targets), f"panel {p.get('title')!r}: no query")
            for t in [p] + targets:
                uid = t.get("datasource", {}).get("uid")
                fail.check(uid == "${datasource}", f"panel {p.get('title')!r}: datasource uid {uid!r} is not ${{datasource}}")
            for t in targets:
                queries.append((p["title"], t["expr"]))

    walk(dash.get("panels", []))
    fail.check(len(ids) == len(set(ids)), "panel ids are not unique")
    for v in variables.values():
        q = v.get("query")
        if v.get("type") == "query":
            uid = v.get("datasource", {}).get("uid")
            fail.check(uid == "${datasource}", f"variable {v['name']}: datasource uid {uid!r} is not ${{datasource}}")
            q = q["query"] if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q)
            fail.check(bool(m), f"variable {v['name']}: not label_values(<selector>, <label>)")
            if m:
                queries.append((f"variable {v['name']}", m.group(1)))
    for title, expr in queries:
        names = metric_names(expr)
        used |= names
        fail.check(bool(names), f"{title}: query names no metric: {expr}")
        unknown = names - known
        fail.check(not unknown, f"{title}: unknown metrics {sorted(unknown)}")
    missing = DASHBOARD_REQUIRED_METRICS - used
    fail.check(not missing, f"dashboard shows none of {sorted(missing)}")

    # Every dashboard query is valid PromQL: promtool parses them as recording rules.
    grafana_vars = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}
    rules_for_promtool = []
    for i, (title, expr) in enumerate(queries):
        for var, value in grafana_vars.items():
            expr = expr.replace(var, value)
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
        rules_for_promtool.append({"record": f"dashboard:query_{i}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as tmp:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules_for_promtool}]}, tmp)
        tmp.flush()
        run = subprocess.run([args.promtool, "check", "rules", tmp.name], capture_output=True, text=True)
        fail.check(run.returncode == 0, f"promtool rejects a dashboard query:\n{run.stdout}{run.stderr}")

    for message in fail:
        print(f"check_monitoring: {message}", file=sys.stderr)
    checks = f"{len(alerts)} alerts, {len(rules) - len(alerts)} recording rules, {len(queries)} dashboard queries, {len(known)} known metrics"
    if fail:
        print(f"check_monitoring: FAILED ({len(fail)} problems; {checks})", file=sys.stderr)
        return 1
    print(f"check_monitoring: OK ({checks})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

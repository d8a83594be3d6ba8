#!/usr/bin/env python3
"""Writes deploy/grafana/rebill-dashboard.json (run: python3 tools/gen-grafana-dashboard.py > deploy/grafana/rebill-dashboard.json).

One place for the panel layout; test/http/metrics.test.ts checks that every metric the
panels query exists in the registry output."""
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'
panels = []
y = 0
pid = 0
def panel(title, targets, unit="short", kind="timeseries", w=12, h=8, desc=None, extra=None):
    global pid
    pid += 1
    p = {
        "id": pid, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l} for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if desc: p["description"] = desc
    if extra: p["fieldConfig"]["defaults"].update(extra)
    return p
def row(title):
    global pid
    pid += 1
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": []}

layout = [
  [row("Collection")],
  [panel("Attempts by outcome", [(f'sum by (outcome) (rate(rebill_attempts_total{{{J}}}[$__rate_interval]))', "{{outcome}}")], "ops", desc="Gateway calls per second by what the gateway answered."),
   panel("Attempts by gateway and outcome", [(f'sum by (gateway, outcome) (rate(rebill_attempts_total{{{J}}}[$__rate_interval]))', "{{gateway}} {{outcome}}")], "ops")],
  [panel("Scheduling lag p50 / p99", [
      (f'histogram_quantile(0.5, sum by (le) (rate(rebill_scheduling_lag_seconds_bucket{{{J}}}[$__rate_interval])))', "p50"),
      (f'histogram_quantile(0.99, sum by (le) (rate(rebill_scheduling_lag_seconds_bucket{{{J}}}[$__rate_interval])))', "p99")], "s",
      desc="Due instant to gateway call start. The RebillSchedulingLagHigh alert fires when p99 stays over 60 s."),
   panel("Gateway call duration p50 / p99", [
      (f'histogram_quantile(0.5, sum by (le, gateway) (rate(rebill_attempt_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p50 {{gateway}}"),
      (f'histogram_quantile(0.99, sum by (le, gateway) (rate(rebill_attempt_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p99 {{gateway}}")], "s")],
  [panel("Due backlog", [(f'sum(rebill_due_backlog{{{J}}})', "due")], "short", w=8),
   panel("Oldest due age", [(f'max(rebill_oldest_due_age_seconds{{{J}}})', "oldest")], "s", w=8),
   panel("Skipped cycles", [(f'sum by (reason) (increase(rebill_skipped_cycles_total{{{J}}}[$__range]))', "{{reason}}")], "short", kind="stat", w=8)],
  [row("Engine")],
  [panel("Sweep duration p50 / p99", [
      (f'histogram_quantile(0.5, sum by (le) (rate(rebill_sweep_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p50"),
      (f'histogram_quantile(0.99, sum by (le) (rate(rebill_sweep_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "p99"),
      (f'sum(rate(rebill_sweeps_total{{{J},result="failed"}}[$__rate_interval]))', "failed sweeps/s")], "s", w=8),
   panel("Since last sweep", [(f'time() - max(rebill_last_sweep_timestamp_seconds{{{J}}})', "age")], "s", kind="stat", w=4,
      extra={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 180}]}}),
   panel("Clock guard", [(f'max(rebill_clock_guard_holding{{{J}}})', "holding")], "short", kind="stat", w=4,
      extra={"mappings": [{"type": "value", "options": {"0": {"text": "ok", "color": "green"}, "1": {"text": "HOLDING", "color": "red"}}}]}),
   panel("Queue size and bound", [(f'sum(rebill_queue_size{{{J}}})', "size"), (f'sum(rebill_queue_bound{{{J}}})', "bound")], "short", w=8)],
  [panel("Gateway circuits", [(f'max by (gateway) (rebill_gateway_circuit_state{{{J}}})', "{{gateway}}")], "short", kind="state-timeline", w=12,
      desc="0 closed, 1 half_open, 2 open.",
      extra={"mappings": [{"type": "value", "options": {"0": {"text": "closed", "color": "green"}, "1": {"text": "half_open", "color": "orange"}, "2": {"text": "open", "color": "red"}}}]}),
   panel("Subscriptions by status", [(f'sum by (status) (rebill_subscriptions{{{J}}})', "{{status}}")], "short", w=12)],
  [row("HTTP and process")],
  [panel("HTTP requests", [(f'sum by (route, status) (rate(rebill_http_requests_total{{{J}}}[$__rate_interval]))', "{{route}} {{status}}")], "reqps", w=8),
   panel("HTTP duration p99", [(f'histogram_quantile(0.99, sum by (le, route) (rate(rebill_http_request_duration_seconds_bucket{{{J}}}[$__rate_interval])))', "{{route}}")], "s", w=8),
   panel("Failed authentications", [(f'sum(rate(rebill_http_auth_failures_total{{{J}}}[$__rate_interval]))', "failures/s")], "ops", w=8)],
  [panel("Resident memory", [(f'sum(rebill_process_resident_memory_bytes{{{J}}})', "rss")], "bytes", w=12),
   panel("Event loop lag p99", [(f'max(rebill_nodejs_eventloop_lag_p99_seconds{{{J}}})', "p99")], "s", w=12)],
]
for line in layout:
    x = 0
    h = max(p["gridPos"]["h"] for p in line)
    for p in line:
        p["gridPos"]["x"] = x
        p["gridPos"]["y"] = y
        x += p["gridPos"]["w"]
        panels.append(p)
    y += h

dashboard = {
  "__inputs": [], "annotations": {"list": []},
  "title": "rebill", "uid": "rebill-overview", "description": "rebill recurring-billing daemon: collection, engine, gateways, HTTP (metrics listed in the README).",
  "tags": ["rebill", "billing"], "timezone": "utc", "editable": True, "graphTooltip": 1,
  "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
  "templating": {"list": [
     {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
     {"name": "job", "label": "Job", "type": "query", "datasource": DS, "query": {"query": "label_values(rebill_queue_bound, job)", "refId": "job"},
      "definition": "label_values(rebill_queue_bound, job)", "includeAll": True, "multi": True, "current": {}, "refresh": 2, "hide": 0}]},
  "panels": panels,
}
print(json.dumps(dashboard, indent=2))

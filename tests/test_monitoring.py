"""generate_monitoring: alert rules that Prometheus accepts and that fire when they should, and a dashboard
whose every query reads what deploy-mcp's router really exports.

promtool (Debian's prometheus package) checks the rules file and runs the rules on synthetic series in its
unit-test mode, which evaluates them with Prometheus' own engine; the dashboard's queries run against a real
Prometheus scraping the router's real exposition.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_component
from mcp import Client
from prometheus_fixture import PrometheusServer, prometheus_factory

from deploy_mcp.app import App
from deploy_mcp.config.loader import parse_config
from deploy_mcp.monitoring import MonitoringBundle, build_monitoring
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.metrics import BUCKETS, RouterMetrics

__all__ = ["prometheus_factory"]  # a fixture: imported for pytest, not used by name

yaml = pytest.importorskip("yaml")

CONFIG = """
[thresholds]
error_rate = { warn = 0.01, critical = 0.02 }

[services.web]
command = ["run", "{port}"]

[services.web.environments.production]
thresholds = { latency_p95_ms = { warn = 300, critical = 800 }, latency_p99_ms = { warn = 900, critical = 1500 } }

[services.web.environments.staging]

[services.api]
target = "kubernetes"
image = "registry.example/api"

[services.api.environments.prod-eu]
namespace = "shop"
"""
SKILL_DEFAULTS = '[services.web]\ncommand = ["run", "{port}"]\n[services.web.environments.production]\n'
SELECTOR = 'service="web",environment="production"'


def bundle(service: str = "web", environment: str = "production", config: str = CONFIG) -> MonitoringBundle:
    return build_monitoring(parse_config(config), service, environment)


def rules_of(text: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    assert len(groups) == 1
    return groups[0]["rules"]


def rule(rules: list[dict[str, Any]], alert: str, **labels: str) -> dict[str, Any]:
    found = [r for r in rules if r["alert"] == alert and all(r["labels"].get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (alert, labels, [(r["alert"], r["labels"]) for r in rules])
    return found[0]


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    require_component("prometheus", binary is not None, "apt-get install prometheus")
    assert binary is not None
    return binary


# -- the rules file ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "environment"), [("web", "production"), ("web", "staging"), ("api", "prod-eu")])
def test_promtool_accepts_the_generated_rules(tmp_path: Path, promtool: str, service: str, environment: str) -> None:
    generated = bundle(service, environment)
    path = tmp_path / Path(generated.alert_rules_file).name
    path.write_text(generated.alert_rules_yaml, encoding="utf-8")
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(generated.alerts)} rules found" in checked.stdout


def test_thresholds_from_deploy_toml_are_in_the_expressions() -> None:
    production = rules_of(bundle().alert_rules_yaml)
    critical = rule(production, "HighErrorRate", severity="critical")
    assert "> 0.02\n" in critical["expr"] and critical["for"] == "2m"
    assert "> 0.01\n" in rule(production, "HighErrorRate", severity="warning")["expr"]
    latency = rule(production, "HighLatency", severity="warning")
    assert "histogram_quantile(0.95" in latency["expr"] and "> 0.8\n" in latency["expr"] and latency["for"] == "5m"
    assert "> 0.3\n" in rule(production, "HighLatency", severity="info")["expr"]
    assert "> 1.5\n" in rule(production, "HighLatencyP99")["expr"]
    assert "more than 2% of requests fail" in critical["annotations"]["summary"]
    for each in production:
        assert each["labels"]["service"] == "web" and each["labels"]["environment"] == "production"
        assert SELECTOR in each["expr"]
    trigger = rule(production, "AutoRollbackTrigger", reason="error-rate")
    assert trigger["labels"]["action"] == "rollback" and trigger["labels"]["automation"] == "deploy-mcp"
    assert 'rollback(service="web", environment="production"' in trigger["annotations"]["description"]

    # staging inherits the global error rates and the skill's default latency (no p99 configured there).
    staging = rules_of(bundle("web", "staging").alert_rules_yaml)
    assert "> 2\n" in rule(staging, "HighLatency", severity="warning")["expr"]
    assert not [r for r in staging if r["alert"] == "HighLatencyP99"]
    defaults = rules_of(bundle(config=SKILL_DEFAULTS).alert_rules_yaml)
    assert "> 0.05\n" in rule(defaults, "HighErrorRate", severity="critical")["expr"]


def test_every_metric_the_rules_and_panels_read_is_one_the_router_exports() -> None:
    metrics = RouterMetrics("web", "production")
    metrics.record("1.0.0", 200, 0.01)
    metrics.record("2.0.0", 503, 0.3)
    body, _ = metrics.exposition(
        {"deploy_mcp_traffic_weight": {"1.0.0": 50}, "deploy_mcp_instances_ready": {"1.0.0": 1}}
    )
    exported: dict[str, set[str]] = {}
    for line in body.decode().splitlines():
        if match := re.match(r"^(\w+)\{(.*)\} ", line):
            exported.setdefault(match.group(1), set()).update(re.findall(r'(\w+)="', match.group(2)))
    generated = bundle()
    expressions = [r["expr"] for r in rules_of(generated.alert_rules_yaml)]
    expressions += [t["expr"] for p in generated.dashboard["panels"] for t in p.get("targets", [])]
    expressions += [a["expr"] for a in generated.dashboard["annotations"]["list"] if "expr" in a]
    used = {
        (name, frozenset(re.findall(r"(\w+)=~?\"", selector)))
        for expr in expressions
        for name, selector in re.findall(r"(deploy_mcp_\w+)\{([^}]*)\}", expr)
    }
    assert {name for name, _ in used} == set(exported) - {
        "deploy_mcp_request_duration_seconds_count",
        "deploy_mcp_request_duration_seconds_sum",
    }
    for name, labels in used:
        assert labels <= exported[name], (name, labels, exported[name])


# -- the rules in Prometheus' own engine (promtool test rules) -----------------------------------------------------


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    labels = {"service": "web", "environment": "production", **labels}
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{shown}}}", "values": values}


def requests(version: str, ok_per_step: str, errors_per_step: str = "") -> list[dict[str, str]]:
    found = [series("deploy_mcp_requests_total", ok_per_step, version=version, status="200")]
    if errors_per_step:
        found.append(series("deploy_mcp_requests_total", errors_per_step, version=version, status="500"))
    return found


def latency(version: str, bound: float, per_step: int, steps: int) -> list[dict[str, str]]:
    """Every request takes between the bucket below ``bound`` and ``bound``."""
    return [
        series(
            "deploy_mcp_request_duration_seconds_bucket",
            f"0+{per_step if le >= bound else 0}x{steps}",
            version=version,
            le=le_text,
        )
        for le, le_text in [(b, repr(b)) for b in BUCKETS] + [(float("inf"), "+Inf")]
    ]


def expect(alertname: str, at: str, *label_sets: dict[str, str]) -> dict[str, Any]:
    base = {"service": "web", "environment": "production"}
    return {"eval_time": at, "alertname": alertname, "exp_alerts": [{"exp_labels": {**base, **s}} for s in label_sets]}


def run_promtool(promtool: str, folder: Path, rules_yaml: str, tests: list[dict[str, Any]]) -> None:
    """Rules without their annotations (whose text promtool would compare too), run on the given series."""
    document = yaml.safe_load(rules_yaml)
    for each in document["groups"][0]["rules"]:
        each.pop("annotations", None)
    (folder / "rules.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    unit = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": tests}
    (folder / "tests.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    ran = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_error_rate_alerts_fire_at_the_configured_thresholds(tmp_path: Path, promtool: str) -> None:
    three_percent = requests("2.0.0", "0+97x60", "0+3x60")  # 100 requests per 15 s, 3 of them fail
    run_promtool(
        promtool,
        tmp_path,
        bundle().alert_rules_yaml,
        [
            {
                "interval": "15s",
                "input_series": three_percent,
                "alert_rule_test": [
                    expect("HighErrorRate", "1m"),  # pending: critical needs 2 minutes, warning 5
                    expect("HighErrorRate", "5m", {"severity": "critical"}),
                    expect("HighErrorRate", "11m", {"severity": "critical"}, {"severity": "warning"}),
                    expect("AutoRollbackTrigger", "11m"),  # one version all along: no deployment to undo
                ],
            },
            {
                "interval": "15s",  # 2.0.0 replaced 1.0.0 at minute 5, and fails 3% of requests
                "input_series": [
                    series("deploy_mcp_instances_ready", "2x60", version="2.0.0"),
                    *requests("1.0.0", "0+100x20"),
                    *requests("2.0.0", "_x20 0+97x40", "_x20 0+3x40"),
                ],
                "alert_rule_test": [
                    expect(
                        "AutoRollbackTrigger",
                        "11m",
                        {
                            "severity": "critical",
                            "action": "rollback",
                            "automation": "deploy-mcp",
                            "reason": "error-rate",
                        },
                    ),
                ],
            },
            {
                "interval": "15s",  # half the requests fail, but 40 requests in 5 minutes are too few to judge
                "input_series": requests("2.0.0", "0+1x60", "0+1x60"),
                "alert_rule_test": [expect("HighErrorRate", "11m")],
            },
        ],
    )
    # The skill's defaults (critical 5%): 3% is a warning, not a page.
    defaults = bundle(config=SKILL_DEFAULTS)
    run_promtool(
        promtool,
        tmp_path,
        defaults.alert_rules_yaml,
        [
            {
                "interval": "15s",
                "input_series": three_percent,
                "alert_rule_test": [expect("HighErrorRate", "11m", {"severity": "warning"})],
            }
        ],
    )


def test_latency_alerts_follow_the_p95_thresholds(tmp_path: Path, promtool: str) -> None:
    ok = requests("2.0.0", "0+100x60")
    run_promtool(
        promtool,
        tmp_path,
        bundle().alert_rules_yaml,  # p95 warn 300 ms, critical 800 ms
        [
            {
                "interval": "15s",  # every request 0.5-1 s: p95 about 0.98 s
                "input_series": ok + latency("2.0.0", 1.0, 100, 60),
                "alert_rule_test": [
                    expect("HighLatency", "4m"),
                    expect("HighLatency", "11m", {"severity": "warning"}, {"severity": "info"}),
                ],
            },
            {
                "interval": "15s",  # every request 0.25-0.5 s: p95 about 0.49 s, over warn only
                "input_series": ok + latency("2.0.0", 0.5, 100, 60),
                "alert_rule_test": [expect("HighLatency", "11m", {"severity": "info"})],
            },
        ],
    )


def test_service_down_needs_three_failed_health_checks(tmp_path: Path, promtool: str) -> None:
    ready = series("deploy_mcp_instances_ready", "2x20 0x20", version="2.0.0")  # all instances fail from 5m15s
    run_promtool(
        promtool,
        tmp_path,
        bundle().alert_rules_yaml,
        [
            {
                "interval": "15s",
                "input_series": [ready, *requests("2.0.0", "0+100x40")],
                "alert_rule_test": [
                    expect("ServiceDown", "5m"),
                    expect("ServiceDown", "5m30s"),  # two failed checks: not yet
                    # The third failed check is at 5m45s; Prometheus 2.x ranges include their left edge, so an
                    # evaluation exactly on a scrape sees one more sample: allow one interval for it.
                    expect("ServiceDown", "6m", {"severity": "critical"}),
                    expect("AutoRollbackTrigger", "6m"),  # nothing was deployed within the hour
                ],
            },
            {
                "interval": "15s",
                "input_series": [
                    series("deploy_mcp_instances_ready", "2x20 0x20", version="2.0.0"),
                    *requests("1.0.0", "0+100x10"),
                    *requests("2.0.0", "_x10 0+100x10"),
                ],
                "alert_rule_test": [
                    expect(
                        "AutoRollbackTrigger",
                        "6m",
                        {
                            "severity": "critical",
                            "action": "rollback",
                            "automation": "deploy-mcp",
                            "reason": "service-down",
                        },
                    ),
                ],
            },
            {
                "interval": "15s",  # the router stopped reporting at all: down for people, not for automation
                "input_series": [
                    series("deploy_mcp_instances_ready", "2x20", version="2.0.0"),
                    *requests("1.0.0", "0+100x10"),
                    *requests("2.0.0", "_x10 0+100x10"),
                ],
                "alert_rule_test": [
                    expect("ServiceDown", "6m", {"severity": "critical"}),
                    expect("AutoRollbackTrigger", "6m"),
                ],
            },
        ],
    )


# -- the dashboard -------------------------------------------------------------------------------------------------


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_the_dashboard_has_four_rows_of_panels_on_the_grid() -> None:
    dashboard = bundle().dashboard
    json.dumps(dashboard)  # what Grafana imports
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "deploy-mcp-web-production" and dashboard["time"]["from"] == "now-24h"
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Health", "Trends", "Resources", "Deployments"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        taken = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not taken & cells, f"{panel['title']} overlaps another panel"
        cells |= taken
    # Panels sit under their row: each row's panels are below it and above the next row.
    tops = [r["gridPos"]["y"] for r in rows] + [10**6]
    titles_by_row = [
        [p["title"] for p in panels_of(dashboard) if tops[i] < p["gridPos"]["y"] < tops[i + 1]] for i in range(4)
    ]
    assert "Ready instances" in titles_by_row[0] and "Error rate (5m)" in titles_by_row[0]
    assert "Latency p50 / p95 / p99" in titles_by_row[1]
    assert "Ready instances by version" in titles_by_row[2] and "CPU (cores)" in titles_by_row[2]
    assert "Traffic weight by version" in titles_by_row[3]
    latency = next(p for p in panels_of(dashboard) if p["title"] == "Latency p50 / p95 / p99")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]
    assert [t["expr"][:24] for t in latency["targets"]] == [
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
    ]


def test_every_query_names_the_service_and_environment_and_the_thresholds_show() -> None:
    dashboard = bundle().dashboard
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert SELECTOR in target["expr"] or '{job=~"$job"}' in target["expr"], (panel["title"], target)
    error_rate = next(p for p in panels_of(dashboard) if p["title"] == "Error rate by version")
    steps = [s["value"] for s in error_rate["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 0.01, 0.02]
    p95 = next(p for p in panels_of(dashboard) if p["title"] == "p95 latency (5m)")
    assert [s["value"] for s in p95["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.3, 0.8]
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert annotations["Deployments"]["target"]["tags"] == ["deploy", "web", "production"]
    assert annotations["Traffic shifts"]["expr"].startswith(f"changes(deploy_mcp_traffic_weight{{{SELECTOR}}}")
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "job"]


def test_on_kubernetes_the_resources_row_reads_cadvisor_in_the_namespace() -> None:
    generated = bundle("api", "prod-eu")
    titles = [p["title"] for p in panels_of(generated.dashboard)]
    assert "CPU used / limit" in titles and "Memory used / limit" in titles and "CPU (cores)" not in titles
    cpu = next(p for p in panels_of(generated.dashboard) if p["title"] == "CPU used / limit")
    assert 'namespace="shop",container="api"' in cpu["targets"][0]["expr"]
    assert [s["value"] for s in cpu["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.7, 0.9]
    assert any("on kubernetes" in note for note in generated.notes)


# -- through MCP ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_generate_monitoring_through_mcp_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text(CONFIG, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    app = App.load(tmp_path / "deploy.toml")
    async with Client(build_server(app)) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("generate_monitoring", {"service": "web", "environment": "production"})
        slow = await client.call_tool(
            "generate_monitoring", {"service": "web", "environment": "production", "scrape_interval": "1m"}
        )
        unknown = await client.call_tool("generate_monitoring", {"service": "web", "environment": "prod"})
        bad = await client.call_tool(
            "generate_monitoring", {"service": "web", "environment": "production", "scrape_interval": "often"}
        )
    assert listed["generate_monitoring"].annotations.read_only_hint is True
    assert not result.is_error, result.content
    answer = result.structured_content
    assert answer["alert_rules_file"] == "monitoring/web-production-alerts.yml"
    assert answer["dashboard"]["title"] == "web in production (deploy-mcp)"
    assert answer["thresholds"]["error_rate"] == {"warn": 0.01, "critical": 0.02}
    assert rules_of(answer["alert_rules_yaml"])
    service_down = rule(rules_of(slow.structured_content["alert_rules_yaml"]), "ServiceDown")
    assert "[3m]" in service_down["expr"]  # 3 checks a minute apart
    assert unknown.is_error and "known environments: production, staging" in unknown.content[0].text
    assert bad.is_error and "scrape_interval" in bad.content[0].text
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "generate_monitoring must not write files"


# -- the dashboard's queries against a real Prometheus -------------------------------------------------------------


class _Exporter:
    """The router's exposition on 127.0.0.1, with traffic for two versions added before every scrape."""

    def __init__(self) -> None:
        self.metrics = RouterMetrics("web", "production")
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                for n in range(20):
                    exporter.metrics.record("1.0.0", 200, 0.004 * (n + 1))
                    exporter.metrics.record("2.0.0", 500 if n == 0 else 200, 0.02 * (n + 1))
                gauges = {
                    "deploy_mcp_traffic_weight": {"1.0.0": 75.0, "2.0.0": 25.0},
                    "deploy_mcp_instances_ready": {"1.0.0": 2.0, "2.0.0": 1.0},
                }
                body, content_type = exporter.metrics.exposition(gauges)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def exporter() -> Iterator[_Exporter]:
    running = _Exporter()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        running.thread.join(5)


def test_the_dashboard_queries_return_data_from_a_real_prometheus(
    exporter: _Exporter, prometheus_factory: Callable[..., PrometheusServer]
) -> None:
    prometheus = prometheus_factory([exporter.address])
    prometheus.wait_for(
        f'count_over_time(deploy_mcp_instances_ready{{{SELECTOR},version="1.0.0"}}[1m])',
        lambda result: bool(result) and float(result[0]["value"][1]) >= 4,
        timeout=40,
    )
    generated = bundle()
    checked = 0
    for panel in panels_of(generated.dashboard):
        for target in panel.get("targets", []):
            if "$job" in target["expr"]:
                continue  # the service's own process metrics: not part of the router's exposition
            expr = target["expr"].replace("$__rate_interval", "30s")
            result = prometheus.query(expr)
            assert result, f"{panel['title']}: {expr} returned nothing"
            checked += 1
    assert checked >= 14
    share = {
        r["metric"]["version"]: float(r["value"][1])
        for r in prometheus.query(
            next(
                t["expr"]
                for p in panels_of(generated.dashboard)
                if p["title"] == "Share of requests by version"
                for t in p["targets"]
            ).replace("$__rate_interval", "30s")
        )
    }
    assert share == pytest.approx({"1.0.0": 0.5, "2.0.0": 0.5})
    # The alert expressions on the real series: 1 request in 40 fails (2.5%, over the 2% critical), p95 is
    # about 0.44 s (over the 300 ms warn, under the 800 ms critical), two versions take traffic, all are ready.
    firing = {}
    for each in rules_of(generated.alert_rules_yaml):
        result = prometheus.query(each["expr"])
        if result:
            labels = each["labels"]
            firing[(each["alert"], labels.get("reason", labels["severity"]))] = float(result[0]["value"][1])
    assert set(firing) == {
        ("HighErrorRate", "critical"),
        ("HighErrorRate", "warning"),
        ("HighLatency", "info"),
        ("AutoRollbackTrigger", "error-rate"),
    }
    assert firing[("HighErrorRate", "critical")] == pytest.approx(0.025, rel=0.01)
    assert firing[("HighLatency", "info")] == pytest.approx(0.4375, rel=0.05)

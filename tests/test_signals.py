"""Signals against real processes: the hello service, the local platform's router, and a real Prometheus.

What a user would notice: a health check that calls a degraded or dead service healthy, a smoke run that passes
a broken release, or metrics that disagree with the traffic that was actually served (or that turn "Prometheus
is down" into a clean canary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from local_fixtures import teardown
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fixture import PrometheusServer, prometheus_factory

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.config.schema import DeployConfig, PrometheusSource
from deploy_mcp.core.target import Release, TargetError
from deploy_mcp.signals import (
    LocalRouterMetrics,
    MetricSourceError,
    PrometheusMetrics,
    check_health,
    check_instances,
    metric_source_for,
    run_smoke,
)
from deploy_mcp.signals.metrics.prometheus import promql_duration
from deploy_mcp.targets.local.platform import LocalPlatform, create_platform

__all__ = ["prometheus_factory"]  # a fixture: imported for pytest, not used by name

REPO = Path(__file__).resolve().parent.parent
SLOW_MS = 130  # version 3.0.0's extra latency: well inside the router's (0.1, 0.25] s histogram bucket
BAD_ERROR_RATE = 0.25


# -- processes and servers the tests talk to ----------------------------------------------------------------------


@dataclass
class Hello:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def hello() -> Iterator[Callable[..., Hello]]:
    """Start ``python -m examples.hello`` with environment knobs; every instance is stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*, wait: bool = True, **knobs: object) -> Hello:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "examples.hello", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, **{name: str(value) for name, value in knobs.items()}},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        if wait:
            _wait_listening(port, process)
        return Hello(f"http://127.0.0.1:{port}", process)

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hello exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"hello did not listen on {port} within {timeout:g} s")


ODD_ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/degraded": (200, {"Content-Type": "application/json"}, b'{"status": "degraded", "version": "2.0.0"}'),
    "/shouting": (200, {"Content-Type": "application/json"}, b'{"status": "HEALTHY", "version": 7}'),
    "/plain": (200, {"Content-Type": "text/plain"}, b"OK"),
    "/broken-json": (200, {"Content-Type": "application/json"}, b'{"status": "ok"'),
    "/moved": (302, {"Location": "/plain"}, b""),
}


@pytest.fixture
def odd_service() -> Iterator[str]:
    """A real HTTP server answering what hello never does: a degraded status, broken JSON, a redirect."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = ODD_ANSWERS.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog does) and never answers: a hung service."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


# -- health -----------------------------------------------------------------------------------------------------------


def test_health_ok_reports_status_version_and_latency(hello: Callable[..., Hello]) -> None:
    service = hello(VERSION="1.4.2")
    check = check_health(service.url + "/health")
    assert check.healthy, check.detail
    assert (check.status_code, check.status, check.version) == (200, "ok", "1.4.2")
    assert check.latency_ms is not None and 0 < check.latency_ms < 5000
    assert "200" in check.detail


def test_health_starting_service_is_unhealthy_with_503(hello: Callable[..., Hello]) -> None:
    service = hello(SLOW_START_S=60)
    check = check_health(service.url + "/health")
    assert not check.healthy
    assert (check.status_code, check.status) == (503, "starting")
    assert "503" in check.detail and "starting" in check.detail


def test_health_degraded_status_is_unhealthy_and_any_case_of_healthy_passes(odd_service: str) -> None:
    degraded = check_health(odd_service + "/degraded")
    assert not degraded.healthy
    assert degraded.status_code == 200 and degraded.status == "degraded" and degraded.version == "2.0.0"
    assert '"degraded"' in degraded.detail

    shouting = check_health(odd_service + "/shouting")
    assert shouting.healthy and shouting.status == "HEALTHY" and shouting.version == "7"
    assert check_health(odd_service + "/plain").healthy  # 2xx without JSON: nothing contradicts it

    moved = check_health(odd_service + "/moved")
    assert not moved.healthy and moved.status_code == 302 and "redirect" in moved.detail


def test_health_of_a_crashed_service_is_connection_refused(hello: Callable[..., Hello]) -> None:
    service = hello(wait=False, CRASH_ON_START=1)
    assert service.process.wait(timeout=10) == 3
    check = check_health(service.url + "/health")
    assert not check.healthy
    assert check.status_code is None and check.latency_ms is None
    assert "connection refused" in check.detail


def test_health_of_a_hung_service_times_out(silent_url: str) -> None:
    started = time.monotonic()
    check = check_health(silent_url + "/health", timeout=0.5)
    assert not check.healthy and check.status_code is None
    assert "timeout after 0.5 s" in check.detail
    assert time.monotonic() - started < 3


def test_health_of_a_malformed_url_is_an_answer_not_an_exception() -> None:
    check = check_health("ftp://127.0.0.1/health")
    assert not check.healthy and "not a valid http(s) URL" in check.detail


def test_health_and_smoke_keep_the_base_path_of_a_probers_client() -> None:
    """A Kubernetes prober's client points at the API server's service proxy: every check must stay under it."""
    proxy = "/api/v1/namespaces/shop/services/web:80/proxy"
    seen: list[str] = []

    def api_server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if not request.url.path.startswith(proxy + "/"):
            return httpx.Response(403, text="outside the proxy")
        path = request.url.path.removeprefix(proxy)
        if path == "/health":
            return httpx.Response(200, json={"status": "ok", "version": "2.0.0"})
        return httpx.Response(200 if path == "/" else 404, text="x")

    base = f"https://cluster.example{proxy}"
    with httpx.Client(transport=httpx.MockTransport(api_server), base_url=base) as client:
        health = check_health(client, "/health")
        smoke = run_smoke(client, ["/health", "/", "!/nonexistent"])
    assert health.healthy and health.version == "2.0.0" and health.url == base + "/health"
    assert smoke.passed, smoke.summary
    assert smoke.base_url == base and [r.url for r in smoke.results][1] == base + "/"
    assert all(path.startswith(proxy + "/") for path in seen), seen


# -- smoke ------------------------------------------------------------------------------------------------------------


def test_smoke_passes_for_a_good_release(hello: Callable[..., Hello]) -> None:
    service = hello(VERSION="2.0.0")
    report = run_smoke(service.url, ["/health", "/", "/api/status", "!/nonexistent"])
    assert report.passed, report.summary
    assert [r.check for r in report.results] == ["/health", "/", "/api/status", "!/nonexistent"]
    assert [r.status_code for r in report.results] == [200, 200, 200, 404]
    assert all(r.passed and r.latency_ms is not None for r in report.results)
    assert "all 4" in report.summary and "rollback" not in report.summary


def test_smoke_failures_recommend_rollback_and_say_which_check(hello: Callable[..., Hello]) -> None:
    service = hello(ERROR_RATE=1)  # every request to / and /api/* fails
    report = run_smoke(service.url, ["/health", "/", "/missing", "!/health"])
    by_check = {r.check: r for r in report.results}
    assert not report.passed
    assert by_check["/health"].passed
    assert not by_check["/"].passed and by_check["/"].status_code == 500
    assert not by_check["/missing"].passed and by_check["/missing"].status_code == 404
    assert not by_check["!/health"].passed and "expected 404" in by_check["!/health"].detail
    assert report.summary.endswith("rollback recommended")
    assert "3 of 4" in report.summary and "/missing" in report.summary


def test_smoke_rejects_broken_json_redirects_and_a_dead_service(odd_service: str) -> None:
    report = run_smoke(odd_service, ["/plain", "/broken-json", "/moved", "!/nowhere"])
    by_check = {r.check: r for r in report.results}
    assert by_check["/plain"].passed and by_check["!/nowhere"].passed
    assert not by_check["/broken-json"].passed and "not valid JSON" in by_check["/broken-json"].detail
    assert not by_check["/moved"].passed and "redirect" in by_check["/moved"].detail

    dead = run_smoke(f"http://127.0.0.1:{free_port()}", ["/health", "/"])
    assert not dead.passed and all("connection refused" in r.detail for r in dead.results)
    assert dead.summary.endswith("rollback recommended")


def test_smoke_checks_run_in_parallel_so_a_hang_costs_one_timeout(silent_url: str) -> None:
    started = time.monotonic()
    report = run_smoke(silent_url, ["/health", "/", "/api/status", "!/nope"], timeout=0.5)
    assert not report.passed and all("timeout after 0.5 s" in r.detail for r in report.results)
    assert time.monotonic() - started < 2


# -- the local platform: in-process router metrics and instance health ------------------------------------------------


def _project_config(staging_port: int, production_port: int) -> str:
    # The script's path, not -m: instances then run in the project folder, where teardown looks for leftovers.
    command = json.dumps(["{python}", str(REPO / "examples" / "hello" / "server.py"), "--port", "{port}"])
    return f"""\
[services.hello]
command = {command}
replicas = 1

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "{BAD_ERROR_RATE}", LATENCY_MS = "{SLOW_MS}" }}

[services.hello.environments.staging]
port = {staging_port}
[services.hello.environments.production]
port = {production_port}
[services.hello.environments.qa]
"""


@dataclass
class Platform:
    project: Project
    target: LocalPlatform
    production_port: int

    def start(self, environment: str) -> str:
        """1.0.0 and 3.0.0 side by side at 50/50; returns the router's URL."""
        for version in ("1.0.0", "3.0.0"):
            release = Release.resolve("hello", self.project.config.services["hello"], version)
            self.target.workload.start_version("hello", environment, release, 1)
        self.target.router.set_weights("hello", environment, {"1.0.0": 50, "3.0.0": 50})
        return self.target.endpoint("hello", environment)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("signals-project")
    production_port = free_port()
    (folder / "deploy.toml").write_text(_project_config(free_port(), production_port), encoding="utf-8")
    project = load_project(folder / "deploy.toml")
    target = create_platform(project, health_interval=0.5, start_timeout=20.0, kill_timeout=3.0)
    try:
        yield Platform(project, target, production_port)
    finally:
        teardown(target)


@pytest.fixture(scope="module")
def prometheus(prometheus_factory: Callable[..., PrometheusServer], platform: Platform) -> PrometheusServer:
    """Scrapes the production router every second; started before the router so its first scrape is early."""
    return prometheus_factory([f"127.0.0.1:{platform.production_port}"])


@pytest.fixture(scope="module")
def production(platform: Platform, prometheus: PrometheusServer) -> str:
    return platform.start("production")


@pytest.fixture(scope="module")
def staging(platform: Platform) -> str:
    return platform.start("staging")


def send(url: str, count: int, workers: int = 16) -> Counter[tuple[str, int]]:
    """GET / ``count`` times through a router; what was served, by (version that answered, status)."""
    with httpx.Client(timeout=10.0) as client, ThreadPoolExecutor(workers) as pool:
        responses = list(pool.map(lambda _: client.get(url + "/"), range(count)))
    return Counter((r.headers["x-deploy-version"], r.status_code) for r in responses)


def test_smoke_before_traffic_through_a_version_endpoint(platform: Platform, production: str) -> None:
    preview = platform.target.version_endpoint("hello", "production", "1.0.0")
    report = run_smoke(preview, ["/health", "/", "/api/status", "!/nonexistent"])
    assert report.passed, report.summary


def test_check_instances_summarises_the_platform(platform: Platform, production: str) -> None:
    summary = check_instances(platform.target, "hello", "production")
    assert summary.healthy, summary.detail
    assert (summary.total, summary.healthy_count, summary.crash_loop) == (2, 2, False)
    assert "all 2 instance(s) healthy" in summary.detail

    one = check_instances(platform.target, "hello", "production", version="3.0.0")
    assert one.healthy and one.total == 1 and one.instances[0].version == "3.0.0"

    nothing = check_instances(platform.target, "hello", "qa")
    assert not nothing.healthy and nothing.total == 0 and "not running" in nothing.detail

    with pytest.raises(TargetError, match="unknown service"):
        check_instances(platform.target, "nope", "production")


def test_local_router_metrics_count_exactly_what_was_served(platform: Platform, staging: str) -> None:
    served = send(staging, 200)
    source = LocalRouterMetrics(platform.target.metrics)
    snapshots = source.snapshot("hello", "staging", ["1.0.0", "3.0.0", "9.9.9"], 60)

    assert set(snapshots) == {"1.0.0", "3.0.0", "9.9.9"}
    for version in ("1.0.0", "3.0.0"):
        requests = sum(n for (v, _), n in served.items() if v == version)
        errors = sum(n for (v, status), n in served.items() if v == version and status >= 500)
        assert (snapshots[version].requests, snapshots[version].errors) == (requests, errors)
        assert snapshots[version].error_rate == pytest.approx(errors / requests)
    assert snapshots["1.0.0"].requests == snapshots["3.0.0"].requests == 100  # the router's split is exact
    assert 0 < snapshots["3.0.0"].errors < 100
    assert snapshots["3.0.0"].p95_ms is not None and SLOW_MS <= snapshots["3.0.0"].p95_ms < SLOW_MS + 200
    assert snapshots["1.0.0"].p95_ms is not None and snapshots["1.0.0"].p95_ms < SLOW_MS

    idle = snapshots["9.9.9"]
    assert (idle.requests, idle.errors, idle.error_rate, idle.p95_ms, idle.p99_ms) == (0, 0, 0.0, None, None)


def test_local_router_metrics_of_an_environment_that_is_not_running(platform: Platform) -> None:
    with pytest.raises(MetricSourceError, match="not running"):
        LocalRouterMetrics(platform.target.metrics).snapshot("hello", "qa", ["1.0.0"], 30)


def test_metric_source_for_prefers_prometheus_then_the_router_else_explains(platform: Platform) -> None:
    with_prometheus = DeployConfig.model_validate({"targets": {"prometheus": {"url": "http://127.0.0.1:9/"}}})
    chosen = metric_source_for(with_prometheus, "hello", "production", platform.target)
    assert isinstance(chosen, PrometheusMetrics) and chosen.url == "http://127.0.0.1:9"

    local = metric_source_for(platform.project.config, "hello", "production", platform.target)
    assert isinstance(local, LocalRouterMetrics) and local.traffic is platform.target.metrics

    # a platform whose router counts nothing (Kubernetes without a mesh) needs Prometheus
    no_metrics = dataclasses.replace(platform.target, metrics=None)
    with pytest.raises(MetricSourceError, match=r"\[targets\.prometheus\]"):
        metric_source_for(platform.project.config, "hello", "production", no_metrics)


# -- Prometheus scraping the real local router --------------------------------------------------------------------


def _router_counters(router: str) -> dict[tuple[str, str], float]:
    """The router's own cumulative request counters, read from its /metrics."""
    counters: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(router + "/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "deploy_mcp_requests_total":
                counters[(sample.labels["version"], sample.labels["status"])] = sample.value
    return counters


def _wait_scraped(prometheus: PrometheusServer, expected: dict[tuple[str, str], float], after: float = 0.0) -> float:
    """Poll until Prometheus' latest samples equal ``expected`` (and were taken after ``after``); returns the
    timestamp of that scrape."""
    promql = 'deploy_mcp_requests_total{service="hello",environment="production"}[10s]'
    latest: dict[tuple[str, str], tuple[float, float]] = {}

    def matches(result: list[dict]) -> bool:
        latest.clear()
        for series in result:
            timestamp, value = series["values"][-1]
            latest[(series["metric"]["version"], series["metric"]["status"])] = (float(timestamp), float(value))
        newest = max((timestamp for timestamp, _ in latest.values()), default=0.0)
        return newest > after and {key: value for key, (_, value) in latest.items()} == expected

    prometheus.wait_for(promql, matches, timeout=20)
    return max(timestamp for timestamp, _ in latest.values())


def test_prometheus_metrics_match_the_traffic_served(production: str, prometheus: PrometheusServer) -> None:
    # Series must exist before the measured traffic: increase() cannot see what a counter held at birth.
    seen: Counter[tuple[str, int]] = Counter()
    while not (seen[("1.0.0", 200)] and seen[("3.0.0", 200)] and seen[("3.0.0", 500)]):
        seen += send(production, 10)
    baseline = _router_counters(production)
    # The window starts just before the first scrape that holds the baseline, so that sample opens the window;
    # two more quiet scrapes make the window long enough for increase()'s extrapolation at its end to stay small.
    window_start = _wait_scraped(prometheus, baseline) - 0.01
    _wait_scraped(prometheus, baseline, after=window_start + 2)

    served = send(production, 200)
    final = Counter(baseline)
    final.update({(version, str(status)): n for (version, status), n in served.items()})
    _wait_scraped(prometheus, dict(final))
    window = time.time() - window_start
    snapshots = PrometheusMetrics(prometheus.url).snapshot("hello", "production", ["1.0.0", "3.0.0", "9.9.9"], window)
    defaults = PrometheusMetrics(prometheus.url, PrometheusSource(url=prometheus.url)).snapshot(
        "hello", "production", ["1.0.0", "3.0.0"], time.time() - window_start
    )

    for version in ("1.0.0", "3.0.0"):
        requests = sum(n for (v, _), n in served.items() if v == version)
        errors = sum(n for (v, status), n in served.items() if v == version and status >= 500)
        print(f"{version}: served {requests} ({errors} errors) in {window:.2f} s; Prometheus {snapshots[version]}")
        for snapshot in (snapshots[version], defaults[version]):
            # increase() extrapolates to the window's edges: never fewer than served, a few percent more.
            assert requests <= snapshot.requests <= requests * 1.12 + 1
            # Errors and requests come from the same scrapes, so their ratio is exact.
            assert snapshot.error_rate == pytest.approx(errors / requests, abs=0.005)
    assert snapshots["1.0.0"].error_rate == 0.0 and snapshots["1.0.0"].errors == 0
    assert snapshots["3.0.0"].errors > 0
    # histogram_quantile interpolates inside the bucket that holds the true latency: (100, 250] ms for 3.0.0.
    for snapshot in (snapshots["3.0.0"], defaults["3.0.0"]):
        assert snapshot.p95_ms is not None and 100 < snapshot.p95_ms <= 250
    assert snapshots["3.0.0"].p99_ms is not None and 100 < snapshots["3.0.0"].p99_ms <= 250
    assert snapshots["1.0.0"].p95_ms is not None and snapshots["1.0.0"].p95_ms <= 50

    idle = snapshots["9.9.9"]
    assert (idle.requests, idle.errors, idle.error_rate, idle.p95_ms, idle.p99_ms) == (0, 0, 0.0, None, None)


def test_prometheus_rejecting_a_query_names_it(prometheus: PrometheusServer) -> None:
    broken = PrometheusSource(url=prometheus.url, error_rate="sum(rate(deploy_mcp_requests_total[{window}])")
    with pytest.raises(MetricSourceError) as raised:
        PrometheusMetrics(prometheus.url, broken).snapshot("hello", "production", ["1.0.0"], 30)
    message = str(raised.value)
    assert "error_rate" in message and "sum(rate(deploy_mcp_requests_total[30s])" in message
    assert "[targets.prometheus].error_rate" in message

    unfillable = PrometheusSource(url=prometheus.url, latency_p95="histogram_quantile(0.95, {job})")
    with pytest.raises(MetricSourceError, match=r"\[targets\.prometheus\]\.latency_p95.*placeholders"):
        PrometheusMetrics(prometheus.url, unfillable).snapshot("hello", "production", ["1.0.0"], 30)


def test_prometheus_down_or_hung_is_an_error_never_zero_traffic(silent_url: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricSourceError, match="cannot reach Prometheus"):
        PrometheusMetrics(down).snapshot("hello", "production", ["1.0.0"], 30)
    with pytest.raises(MetricSourceError, match=r"did not answer the \w+ query within 0.5 s"):
        PrometheusMetrics(silent_url, timeout=0.5).snapshot("hello", "production", ["1.0.0"], 30)


def test_promql_durations() -> None:
    assert [promql_duration(s) for s in (30, 2.5, 0.0001, 120.0)] == ["30s", "2500ms", "1ms", "120s"]

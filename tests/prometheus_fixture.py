"""A real Prometheus for tests: started on 127.0.0.1 with a throwaway TSDB, scraping the targets a test names.

Import the fixture into a test module (``from prometheus_fixture import prometheus_factory``) and call it with
the ``host:port`` targets to scrape. Every Prometheus started in the session is stopped at its end, and each
call waits until the server answers queries, never for a fixed time. Scrapes run every second; Prometheus hands
new targets to its scraper in batches about 5 s apart, so the first sample of a target arrives a few seconds
after start: start it early and use ``wait_for`` for the data a test needs.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, require_component

START_TIMEOUT = 30.0
SCRAPE_INTERVAL = "1s"


class PrometheusServer:
    """One running Prometheus and a few helpers for asking it things."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, folder: Path, targets: list[str]) -> None:
        self.process = process
        self.url = url
        self.folder = folder
        self.targets = targets

    @property
    def log(self) -> str:
        return (self.folder / "prometheus.log").read_text(errors="replace")[-4000:]

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer, else raises with Prometheus' error."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5.0).json()
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate now; the result vector (each item has ``metric`` and ``value`` = [timestamp, "number"])."""
        return self.api("query", query=promql)["result"]

    def wait_for(
        self, promql: str, accept: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll a query until ``accept`` likes its result; fails with the last result and the log otherwise."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if accept(result):
                return result
            time.sleep(0.05)
        raise AssertionError(f"Prometheus: {promql} never matched in {timeout:g} s; last: {result}\n{self.log}")

    def wait_for_scrapes(self, timeout: float = 20.0) -> None:
        """Until every target was scraped at least once (up or down)."""
        self.wait_for("up", lambda result: len(result) >= len(self.targets), timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_prometheus(targets: list[str], scrape_interval: str = SCRAPE_INTERVAL) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` (``host:port``, path /metrics) and wait until it answers queries."""
    binary = shutil.which("prometheus")
    require_component("prometheus", binary is not None, "apt-get install prometheus")
    assert binary is not None
    folder = Path(tempfile.mkdtemp(prefix="prometheus-"))
    config = folder / "prometheus.yml"
    listed = ", ".join(f'"{target}"' for target in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  scrape_timeout: {scrape_interval}\n"
        f"scrape_configs:\n  - job_name: deploy\n    static_configs:\n      - targets: [{listed}]\n",
        encoding="utf-8",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(folder / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, url, folder, targets)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"Prometheus exited with {server.process.returncode}:\n{server.log}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200:
                answer = httpx.get(f"{server.url}/api/v1/query", params={"query": "1"}, timeout=1.0).json()
                if answer.get("status") == "success":
                    return
        time.sleep(0.05)
    raise AssertionError(f"Prometheus did not become ready in {START_TIMEOUT:g} s:\n{server.log}")


@pytest.fixture(scope="session")
def prometheus_factory() -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_factory(["127.0.0.1:8080"])`` -> a running PrometheusServer, stopped when the session ends."""
    started: list[PrometheusServer] = []

    def start(targets: list[str], scrape_interval: str = SCRAPE_INTERVAL) -> PrometheusServer:
        server = start_prometheus(targets, scrape_interval)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()

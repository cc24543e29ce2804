"""The live rollout view (an MCP App) in a real browser, against real deployments on the local platform.

A small host page does what a chat client that speaks MCP Apps does: it calls `deploy`, follows the tool's
``_meta.ui.resourceUri`` to the ``ui://`` resource, renders it in a sandboxed iframe and speaks JSON-RPC over
postMessage with it, forwarding the view's `deployment_status` calls to the server. The server is the real one,
reached through a real MCP client session that advertises the Apps extension. Chromium watches the view as a person
would: the traffic split moves while a good canary goes out, and a bad one ends with the rollback marked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from conftest import require_component
from local_fixtures import free_port, wait_until_gone
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.server.apps import ROLLOUT_URI, static_page
from deploy_mcp.targets.local.loadgen import BackgroundLoad

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello" / "server.py"
HOST_PAGE = REPO / "tests" / "browser" / "rollout_host.html"
CHECK = REPO / "tests" / "browser" / "check_rollout_app.mjs"
CHROMIUM = Path("/usr/bin/chromium")
APPS_CLIENT = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


def config(port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""
[services.hello]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.3" }}

[services.hello.environments.staging]
strategy = "canary"
steps = [20, 50, 100]
port = {port}
analysis = {{ interval = "1s", bake = "2s", min_requests = 20 }}
scale_down_delay = "1s"
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    port = free_port()
    (tmp_path / "deploy.toml").write_text(config(port))
    app = App.load(tmp_path / "deploy.toml")
    app.port = port  # type: ignore[attr-defined]
    try:
        yield app
    finally:
        app.close()
        from deploy_mcp.targets.local import cli

        cli.stop(app.project, "hello")
        assert wait_until_gone(tmp_path) == [], "processes left running"


class Bridge:
    """The host's line to the server: /rpc calls a real MCP client session held in an event loop of its own."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self.portal = portal
        self.client = client
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, "text/html", HOST_PAGE.read_bytes())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    answer = {"result": bridge.call(body["method"], body.get("params") or {})}
                except Exception as exc:  # the host page shows it; the test fails on what the view then shows
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                self._send(200, "application/json", json.dumps(answer).encode())

            def _send(self, code: int, kind: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def call(self, method: str, params: dict[str, Any]) -> Any:
        if method == "tools/list":
            result = self.portal.call(self.client.list_tools)
        elif method == "resources/read":
            result = self.portal.call(self.client.read_resource, params["uri"])
        elif method == "tools/call":
            result = self.portal.call(self.client.call_tool, params["name"], params.get("arguments") or {})
        else:
            raise ValueError(f"the test host does not forward {method}")
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def watch(url: str, arguments: dict[str, Any], screenshot: Path | None = None) -> dict[str, Any]:
    command = ["node", str(CHECK), "--url", url, "--tool", "deploy", "--arguments", json.dumps(arguments)]
    command += ["--chromium", str(CHROMIUM), *(["--screenshot", str(screenshot)] if screenshot else [])]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{result.stderr}\n{result.stdout}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_view_shows_the_split_move_and_the_rollback_marked(app: App, tmp_path: Path) -> None:
    require_component("chromium", CHROMIUM.exists(), "install Debian's chromium (scripts/setup.sh does)")
    require_component("node", shutil.which("node") is not None, "install Node.js and run npm ci")
    url = f"http://127.0.0.1:{app.port}/"  # type: ignore[attr-defined]
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(build_server(app), extensions=[APPS_CLIENT])) as client,
        BackgroundLoad(url, rate=150),
    ):
        tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
        assert tools["deploy"].meta == {"ui": {"resourceUri": ROLLOUT_URI}}
        assert tools["deployment_status"].meta == {"ui": {"resourceUri": ROLLOUT_URI}}
        first = portal.call(
            client.call_tool, "deploy", {"service": "hello", "version": "1.0.0", "environment": "staging"}
        )
        assert first.structured_content["record"]["status"] == "succeeded", first.structured_content["record"]

        bridge = Bridge(portal, client)
        try:
            good = watch(
                bridge.url, {"service": "hello", "version": "2.0.0", "environment": "staging", "wait_seconds": 0}
            )
            bad = watch(
                bridge.url,
                {"service": "hello", "version": "3.0.0", "environment": "staging", "wait_seconds": 0},
                screenshot=tmp_path / "rollout.png",
            )
        finally:
            bridge.close()
        history = portal.call(client.call_tool, "deployment_history", {"service": "hello"}).structured_content

    assert good["problems"] == [] and bad["problems"] == [], (good["problems"], bad["problems"])
    assert good["host"]["initialized"], "the view never completed ui/initialize"
    # The view refreshed itself through the host while the canary went out, and saw the split move.
    assert good["host"]["forwarded"] and set(good["host"]["forwarded"]) == {"deployment_status"}
    assert good["final"] == "succeeded", good
    assert "in progress" in good["statuses"] or "pending" in good["statuses"], good["statuses"]
    assert len(good["splits"]) >= 3, f"the live split should change while it runs: {good['splits']}"
    assert good["splits"][-1] == "now: 2.0.0 100%", good["splits"]
    assert {"20%", "50%", "100%"} <= set(good["labels"]), good["labels"]
    assert not good["banner"]["shown"] and good["rollbackMark"] == []
    assert good["thresholdLines"] == {"error": 2, "latency": 2}
    assert good["thresholdLabels"] == ["warn 1%", "critical 5%"], good["thresholdLabels"]
    assert len(good["errorValues"]) == 3 and all(v.endswith("%") for v in good["errorValues"]), good
    assert len(good["latencyValues"]) == 3 and all(v.endswith("ms") for v in good["latencyValues"]), good

    # The bad release: caught at the first canary step, rolled back, and the view says so where people look.
    assert bad["final"] == "rolled back", bad
    assert bad["rollbackMark"] == ["rolled back"]
    assert bad["banner"]["shown"] and bad["banner"]["text"].startswith("Rolled back to 2.0.0: "), bad["banner"]
    assert "error rate" in bad["banner"]["text"], bad["banner"]
    assert "20%" in bad["labels"] and "50%" not in bad["labels"], bad["labels"]
    assert any("Failed" in phase for phase in bad["errorPhases"]), bad["errorPhases"]
    failed_rate = float(bad["errorValues"][-1].rstrip("%"))
    assert failed_rate > 5, f"the failed step's error rate is drawn above the critical line: {bad['errorValues']}"
    assert bad["splits"][-1] == "now: 2.0.0 100%", bad["splits"]
    assert [r["status"] for r in history["records"]][:2] == ["rolled_back", "succeeded"]


def test_the_view_renders_a_record_without_a_host(app: App, tmp_path: Path) -> None:
    """The docs embed a real record in the same page: it draws with no host and no network."""
    require_component("chromium", CHROMIUM.exists(), "install Debian's chromium (scripts/setup.sh does)")
    require_component("node", shutil.which("node") is not None, "install Node.js and run npm ci")
    record = REPO / "docs" / "public" / "rollout" / "canary-rollback.json"
    page = tmp_path / "view.html"
    page.write_text(static_page(json.loads(record.read_text(encoding="utf-8"))), encoding="utf-8")
    script = f"""
      import {{ chromium }} from 'playwright-core'
      const browser = await chromium.launch({{ executablePath: '{CHROMIUM}', args: ['--headless', '--no-sandbox',
        '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--no-first-run'] }})
      const page = await browser.newPage()
      const problems = []
      page.on('pageerror', (e) => problems.push(e.message))
      page.on('request', (r) => {{ if (!r.url().startsWith('file:')) problems.push('fetched ' + r.url()) }})
      await page.goto('file://{page}')
      const seen = await page.evaluate(() => ({{
        status: document.getElementById('status').textContent,
        mark: [...document.querySelectorAll('#split-chart text.rollback-label')].map((n) => n.textContent),
        banner: document.getElementById('rollback').textContent,
      }}))
      console.log(JSON.stringify({{ ...seen, problems }}))
      await browser.close()
    """
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["problems"] == []
    assert seen["status"] == "rolled back" and seen["mark"] == ["rolled back"], seen
    assert seen["banner"].startswith("Rolled back to "), seen


def test_the_docs_pages_are_drawn_by_the_current_view() -> None:
    """The docs show the view over recorded results; a change to the view must reach them."""
    records = sorted((REPO / "docs" / "public" / "rollout").glob("*.json"))
    assert records, "the docs' example records are missing"
    for record in records:
        page = record.with_suffix(".html")
        expected = static_page(json.loads(record.read_text(encoding="utf-8")))
        assert page.exists() and page.read_text(encoding="utf-8") == expected, (
            f"{page.name} is stale: python -m deploy_mcp.server.apps docs/public/rollout/*.json"
        )

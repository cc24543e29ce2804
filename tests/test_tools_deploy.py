"""The SHIP loop through the MCP protocol on the real local platform, under real load.

A good release goes out with zero failed requests; a bad one is caught by the canary and rolled back by the
server itself, and the record says why with the numbers; rollback goes to the last validated version.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from local_fixtures import free_port, wait_until_gone
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"


def config(port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""
[services.hello]
command = {command}
replicas = 2
health = "/health"
smoke = ["/health", "!/nonexistent"]  # "/" fails 30% of the time in 3.0.0: leave it to the analysis

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.3" }}

[services.hello.environments.production]
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


async def user_says_yes(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
    asked.append(params.message)
    return types.ElicitResult(action="accept", content={"confirm": True})


asked: list[str] = []


async def settle(client: Client, result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content
    view = result.structured_content
    deployment_id = view["record"]["id"]
    for _ in range(240):
        if view["record"]["status"] not in ("pending", "in_progress"):
            return view
        await anyio.sleep(0.25)
        status = await client.call_tool("deployment_status", {"deployment_id": deployment_id})
        assert not status.is_error, status.content
        view = status.structured_content
    raise AssertionError(f"{deployment_id} did not settle: {view['record']['status']}")


async def test_ship_loop_good_canary_bad_canary_and_rollback(app: App) -> None:
    progress: list[str] = []

    async def on_progress(_p: float, _t: float | None, message: str | None) -> None:
        progress.append(message or "")

    asked.clear()
    async with Client(build_server(app), elicitation_callback=user_says_yes) as client:
        first = await settle(
            client,
            await client.call_tool(
                "deploy",
                {"service": "hello", "version": "1.0.0", "environment": "production", "wait_seconds": 30},
                progress_callback=on_progress,
            ),
        )
        # The first release has no traffic yet: no data is never a pass, so the server pauses and asks.
        assert first["record"]["status"] == "paused", first["record"]
        assert "no data is not a pass" in first["record"]["reason"]
        assert asked and "production" in asked[0], "production needs the user's confirmation"
        assert progress, "each step is reported as a progress notification"
        url = f"http://127.0.0.1:{app.port}/"  # type: ignore[attr-defined]

        with BackgroundLoad(url, rate=150) as warmup:
            resumed = await settle(client, await client.call_tool("resume", {"deployment_id": first["record"]["id"]}))
            assert resumed["record"]["status"] == "succeeded", resumed["record"]
            assert resumed["record"]["validation"]["passed"] is True
        assert warmup.stop().failures == 0

        with BackgroundLoad(url, rate=150) as load:
            good = await settle(
                client,
                await client.call_tool("deploy", {"service": "hello", "version": "2.0.0", "environment": "production"}),
            )
        assert good["record"]["status"] == "succeeded", good["record"]["reason"]
        assert good["record"]["validation"]["passed"] is True
        assert [v["version"] for v in good["live"]["versions"] if v["weight"]] == ["2.0.0"]
        assert load.stop().requests > 300 and load.stop().failures == 0, load.stop().failures_at[:5]

        with BackgroundLoad(url, rate=150) as load:
            bad = await settle(
                client,
                await client.call_tool("deploy", {"service": "hello", "version": "3.0.0", "environment": "production"}),
            )
        record = bad["record"]
        assert record["status"] == "rolled_back", record
        assert "error rate" in record["reason"] and "%" in record["reason"], record["reason"]
        failed = [v for v in record["verdicts"] if v["phase"] == "Failed"]
        assert failed and failed[0]["metrics"]["requests"] > 0, record["verdicts"]
        assert all(step["weights"] != {"3.0.0": 100} for step in record["steps"] if step.get("weights"))
        weights = {v["version"]: v["weight"] for v in bad["live"]["versions"]}
        assert weights.get("2.0.0") == 100 and weights.get("3.0.0", 0) == 0, bad["live"]
        # Users saw only the canary's share of the bad release's errors (30% of at most a fifth of traffic).
        assert 0 < load.stop().failures < 0.3 * load.stop().requests

        validated = await client.call_tool("validate", {"service": "hello", "environment": "production"})
        assert not validated.is_error, validated.content
        assert validated.structured_content["verdict"] in ("pass", "warn")
        assert validated.structured_content["serving"] == ["2.0.0"]

        back = await settle(
            client,
            await client.call_tool(
                "rollback", {"service": "hello", "environment": "production", "reason": "drill: back to 1.0.0"}
            ),
        )
        assert back["record"]["status"] == "succeeded", back["record"]
        assert back["record"]["version"] == "1.0.0"
        assert back["record"]["rollback_of"] == good["record"]["id"]

        history = await client.call_tool("deployment_history", {"service": "hello"})
        statuses = [(r["version"], r["status"]) for r in history.structured_content["records"]]
        assert statuses == [
            ("1.0.0", "succeeded"),
            ("3.0.0", "rolled_back"),
            ("2.0.0", "rolled_back"),  # reverted by the drill
            ("1.0.0", "succeeded"),
        ]


async def test_production_deploy_without_a_way_to_ask_is_refused(app: App) -> None:
    async with Client(build_server(app)) as client:
        result = await client.call_tool("deploy", {"service": "hello", "version": "1.0.0", "environment": "production"})
        history = await client.call_tool("deployment_history", {})
    assert result.is_error
    assert "deploy-mcp approve" in result.content[0].text
    assert history.structured_content["records"] == []


async def test_unknown_deployment_and_bad_ids_are_clear_errors(app: App) -> None:
    async with Client(build_server(app)) as client:
        missing = await client.call_tool("deployment_status", {"deployment_id": "deploy-2026-01-01-999"})
        malformed = await client.call_tool("deployment_status", {"deployment_id": "../etc"})
    assert missing.is_error and "deploy-2026-01-01-999" in missing.content[0].text
    assert malformed.is_error and "deployment_id" in malformed.content[0].text

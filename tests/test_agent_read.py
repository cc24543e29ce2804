"""What an agent reads: each tool result's text, read the way a model reads it, on real deployments.

The text content is all a model sees of a result in most clients. It must carry the deployment id, the state, the
reason with the numbers that decided it and the next step, in a few lines and each fact once, while
structuredContent keeps the whole record for clients that want it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from local_fixtures import free_port, wait_until_gone
from mcp import Client
from test_rollout_app import config

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad

pytestmark = pytest.mark.anyio
STAGING = {"service": "hello", "environment": "staging"}


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


def text(result: types.CallToolResult) -> str:
    assert not result.is_error, result.content
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


def read_as_an_agent(result: types.CallToolResult) -> str:
    """The text, checked for what makes it cheap to read: not JSON, no line said twice, short."""
    said = text(result)
    with pytest.raises(json.JSONDecodeError):
        json.loads(said)
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), f"a line is repeated:\n{said}"
    assert len(said) < 2500, f"{len(said)} characters:\n{said}"
    return said


async def settle(client: Client, result: types.CallToolResult) -> types.CallToolResult:
    view = result.structured_content
    for _ in range(400):
        if view["record"]["status"] not in ("pending", "in_progress"):
            return result
        await anyio.sleep(0.25)
        result = await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
        view = result.structured_content
    raise AssertionError(f"{view['record']['id']} did not settle")


def line(said: str, start: str) -> str:
    found = [entry for entry in said.splitlines() if entry.startswith(start)]
    assert found, f"no line starting with {start!r}:\n{said}"
    return found[0]


async def test_each_result_says_the_id_the_state_the_reason_with_numbers_and_the_next_step(app: App) -> None:
    url = f"http://127.0.0.1:{app.port}/"  # type: ignore[attr-defined]
    async with Client(build_server(app)) as client:
        # A first release with no traffic cannot be judged: it pauses, and the text says why and what to do.
        first = await settle(client, await client.call_tool("deploy", {**STAGING, "version": "1.0.0"}))
        record = first.structured_content["record"]
        said = read_as_an_agent(first)
        assert said.startswith(f"{record['id']}: hello 1.0.0 to staging (canary): paused at step "), said
        assert "no data is not a pass" in line(said, "reason: ")
        assert re.search(r"\d+ requests?", line(said, "reason: ")), "the reason carries its numbers"
        next_step = line(said, "next: ")
        assert all(word in next_step for word in ("promote", "resume", "abort")), next_step
        paused_steps = [entry for entry in said.splitlines() if entry.strip().startswith("step ")]
        assert any("inconclusive" in entry for entry in paused_steps), "the step it paused on is described"
        assert len(paused_steps) < len(record["steps"]), "finished and pending steps are counted, not listed"

        with BackgroundLoad(url, rate=150):
            resumed = await settle(client, await client.call_tool("resume", {"deployment_id": record["id"]}))
            assert "succeeded" in read_as_an_agent(resumed).splitlines()[0]

            subject = {**STAGING, "version": "2.0.0"}
            plan = read_as_an_agent(await client.call_tool("plan_deployment", subject))
            assert plan.startswith("plan: hello 2.0.0 to staging over 1.0.0: canary (configured)"), plan
            assert "error rate warn 1% / critical 5%" in plan and "p95 warn 500 / critical 2000 ms" in plan
            assert line(plan, "next: ") == "next: preflight, then deploy"

            checklist = read_as_an_agent(await client.call_tool("preflight", subject))
            assert checklist.startswith("preflight: hello 2.0.0 to staging: ready"), checklist
            assert "rollback would return to 1.0.0" in line(checklist, "rollback target: ")
            assert line(checklist, "next: ") == "next: deploy"

            good = await settle(client, await client.call_tool("deploy", subject))
            good_id = good.structured_content["record"]["id"]
            said = read_as_an_agent(good)
            assert said.startswith(f"{good_id}: hello 2.0.0 to staging (canary, from 1.0.0): succeeded after "), said
            steps = line(said, "steps: ")
            assert re.fullmatch(r"steps: (\d+) in all, \1 succeeded", steps), steps
            verdicts = said[said.index("verdicts:") :]
            assert re.search(r"error rate \d+(\.\d+)?% of \d+ requests, p95 \d", verdicts), verdicts
            assert line(said, "serving: ").startswith("serving: 2.0.0 2/2 ready, 100% of traffic")
            assert line(said, "next: ").startswith("next: run validate(")

            checked = read_as_an_agent(await client.call_tool("validate", {**STAGING, "deployment_id": good_id}))
            assert checked.startswith(f"validate hello in staging ({good_id}): pass"), checked
            assert re.search(r"error rate \d+(\.\d+)?% of \d+ requests, p95 \d", line(checked, "metrics ("))
            assert line(checked, "next: ").startswith("next: continue")

            started = await client.call_tool("deploy", {**STAGING, "version": "3.0.0", "wait_seconds": 0})
            running = read_as_an_agent(started)
            assert re.search(r": (pending|in_progress at step \d+/\d+)$", running.splitlines()[0]), running
            assert line(running, "next: ").startswith("next: poll deployment_status(deployment_id)"), running
            bad = await settle(client, started)
        record = bad.structured_content["record"]
        said = read_as_an_agent(bad)
        assert said.startswith(f"{record['id']}: hello 3.0.0 to staging (canary, from 2.0.0): rolled_back"), said
        reason = line(said, "reason: ")
        assert reason == f"reason: {record['reason']}"
        assert re.search(r"\d+ errors? in (the first )?\d+ requests|error rate \d+(\.\d+)?%", reason), reason
        assert "critical 5%" in reason, reason
        assert line(said, "serving: ").startswith("serving: 2.0.0 2/2 ready, 100% of traffic"), said
        assert "previous version serves" in line(said, "next: ")
        assert said.count(record["reason"]) == 1, "the deciding reason is said once"
        assert said.count("above the critical 5%") == 1, f"the deciding numbers are said once:\n{said}"
        failed = line(said, "  step ")
        assert "failed" in failed, "the step that failed is described, the pending ones are only counted"

        history = read_as_an_agent(await client.call_tool("deployment_history", {"service": "hello"}))
        rows = history.splitlines()
        assert rows[0] == "3 deployment(s), newest first:"
        assert rows[1].startswith(f"{record['id']} hello 3.0.0 staging canary rolled_back")
        assert rows[2].startswith(f"{good_id} hello 2.0.0 staging canary succeeded, validated")

        # structuredContent still holds the whole record for clients that want it.
        full: dict[str, Any] = bad.structured_content
        assert len(full["record"]["steps"]) == len(record["steps"]) and full["record"]["verdicts"]
        assert full["thresholds"]["error_rate"] == {"warn": 0.01, "critical": 0.05}


async def test_the_tool_listing_stays_small_and_its_schemas_still_say_what_a_result_holds(app: App) -> None:
    async with Client(build_server(app)) as client:
        listing = await client.list_tools()
    wire = json.dumps(listing.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
    assert len(wire) <= 40_000, f"tools/list is {len(wire):,} characters; the budget is 40,000"
    tools = {tool.name: tool for tool in listing.tools}
    titled = [node for tool in listing.tools for node in schema_nodes([tool.input_schema, tool.output_schema])]
    assert titled and all(node["type"] == "object" and "properties" not in node for node in titled), (
        "a title is left only where a nested model is named instead of spelled out"
    )
    view = tools["deployment_status"].output_schema
    record = view["$defs"]["DeploymentRecord"]
    assert {"id", "status", "reason", "steps", "verdicts"} <= set(record["properties"])
    assert record["properties"]["steps"]["items"] == {"type": "object", "title": "Step"}
    assert view["$defs"]["Status"]["enum"][:3] == ["pending", "in_progress", "paused"]
    assert tools["deploy"].input_schema["properties"]["wait_seconds"]["default"] == 50, "inputs keep defaults"


def schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema node holding a ``title`` keyword (a property called title would be a key of properties)."""
    if isinstance(node, list):
        for item in node:
            yield from schema_nodes(item)
    elif isinstance(node, dict):
        if isinstance(node.get("title"), str):
            yield node
        for key, value in node.items():
            if key == "properties":
                yield from schema_nodes(list(value.values()))
            elif key != "title":
                yield from schema_nodes(value)


async def test_a_summary_that_fails_sends_the_record_instead_of_an_error(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a summary must never turn a tool that did its work into an error the agent retries."""
    from deploy_mcp.server import summaries

    def broken(_result: object) -> str:
        raise KeyError("a field the summary expected")

    monkeypatch.setattr(summaries, "summary_for", broken)
    arguments = {"service": "web", "version": "2.0.0", "environment": "production"}
    async with Client(build_server(App.load(project_dir / "deploy.toml"))) as client:
        result = await client.call_tool("plan_deployment", arguments)
    assert not result.is_error, result.content
    assert json.loads(text(result)) == result.structured_content


async def test_the_shortened_schemas_accept_real_results_and_reject_what_the_full_ones_reject(app: App) -> None:
    """The listing's schema of a deployment view against two recorded canaries, good and broken."""
    from jsonschema import Draft202012Validator

    server = build_server(app)
    server.build_all()
    async with Client(server) as client:
        listed = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
    full = Draft202012Validator(server.full_output_schemas["deployment_status"])
    short = Draft202012Validator(listed["deployment_status"])
    assert len(json.dumps(listed["deployment_status"])) * 3 < len(json.dumps(server.full_output_schemas["deploy"]))
    for recorded in sorted((Path(__file__).parents[1] / "docs" / "public" / "rollout").glob("*.json")):
        view = json.loads(recorded.read_text(encoding="utf-8"))
        assert list(short.iter_errors(view)) == [] and list(full.iter_errors(view)) == []
        broken: list[dict[str, Any]] = [
            {key: value for key, value in view.items() if key != "record"},
            {**view, "record": {**view["record"], "status": "finished-ish"}},
            {**view, "record": {**view["record"], "id": None}},
            {**view, "record": {**view["record"], "steps": "all of them"}},
            {**view, "next_step": 3},
        ]
        for result in broken:
            assert list(full.iter_errors(result)), result.keys()
            assert list(short.iter_errors(result)), "the listing's schema lets through what the full one refuses"

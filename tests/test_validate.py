"""validate through the MCP protocol on the real local platform: the verdict, the advice and what it records.

A user sees: pass -> continue; warn -> investigate for 5 minutes; fail -> roll back now; after an irreversible
migration, fix forward for a warn as for a fail. Once a rollout has finished, "normal" is the last validated
deployment's recorded numbers. A verdict is written only onto the current deployment while its version serves,
and never in a read-only session; an environment where nothing was ever deployed is a clear error.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from local_fixtures import free_port, wait_until_gone
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.config.schema import Thresholds, Tier
from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.tools.validation import RecordedBaseline, _against_recorded

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
BAKE_SECONDS = 2.0


def config(port: int, *, read_only: bool = False) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""
[policy]
read_only = {str(read_only).lower()}

[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health", "!/nonexistent"]  # "/" answers the ERROR_RATE knob: leave it to the metrics

[services.hello.versions."2.0.0"]
env = {{ LATENCY_MS = "150" }}  # under the warn level, but far over twice 1.0.0's latency

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.5" }}

[services.hello.versions."4.0.0"]
env = {{ ERROR_RATE = "0.5" }}
migrations_irreversible = true

[services.hello.versions."5.0.0"]
env = {{ LATENCY_MS = "600" }}  # over the warn level, under critical
migrations_irreversible = true

[services.hello.environments.staging]
strategy = "recreate"
port = {port}
analysis = {{ interval = "0.5s", bake = "{BAKE_SECONDS:g}s", min_requests = 20 }}
thresholds = {{ latency_p95_ms = {{ warn = 400, critical = 4000 }} }}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    (tmp_path / "deploy.toml").write_text(config(port))
    try:
        yield tmp_path, port
    finally:
        from deploy_mcp.config.loader import load_project
        from deploy_mcp.targets.local import cli

        cli.stop(load_project(tmp_path / "deploy.toml"), "hello")
        assert wait_until_gone(tmp_path) == [], "processes left running"


async def call(client: Client, tool: str, arguments: dict) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def settle(client: Client, view: dict) -> dict:
    deployment_id = view["record"]["id"]
    for _ in range(240):
        if view["record"]["status"] not in ("pending", "in_progress"):
            return view
        await anyio.sleep(0.25)
        view = await call(client, "deployment_status", {"deployment_id": deployment_id})
    raise AssertionError(f"{deployment_id} did not settle: {view['record']['status']}")


async def deploy(client: Client, version: str) -> dict:
    view = await call(client, "deploy", {"service": "hello", "version": version, "environment": "staging"})
    return (await settle(client, view))["record"]


async def promoted_past(client: Client, version: str) -> dict:
    """Deploy without traffic (no data is never a pass, so it pauses) and promote past the pause: it succeeds
    without passing validation, the way an agent that overrode a warning ships a bad release."""
    record = await deploy(client, version)
    assert record["status"] == "paused", record
    view = await call(client, "promote", {"deployment_id": record["id"]})
    record = (await settle(client, view))["record"]
    assert record["status"] == "succeeded" and record["validation"]["passed"] is False, record
    return record


async def validate_under_load(client: Client, port: int, **arguments: str) -> dict:
    """Traffic for a whole metric window, then validate while it still flows."""
    with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=100, concurrency=32) as load:
        await anyio.sleep(BAKE_SECONDS + 0.5)
        report = await call(client, "validate", {"service": "hello", "environment": "staging", **arguments})
    load.stop()
    return report


async def record_of(client: Client, deployment_id: str) -> dict:
    return (await call(client, "deployment_status", {"deployment_id": deployment_id}))["record"]


async def test_nothing_deployed_is_a_clear_error_and_writes_nothing(project: tuple[Path, int]) -> None:
    folder, _ = project
    app = App.load(folder / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            result = await client.call_tool("validate", {"service": "hello", "environment": "staging"})
    finally:
        app.close()
    assert result.is_error
    message = result.content[0].text
    assert "nothing has been deployed to hello in staging" in message, message
    assert "roll back now" not in message and "Traceback" not in message
    assert not (app.ledger_path).exists(), "validating an empty environment created a ledger"


async def test_verdicts_advice_baseline_and_what_is_recorded(project: tuple[Path, int]) -> None:
    folder, port = project
    started = time.monotonic()
    app = App.load(folder / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            # 1.0.0 is good: pass, continue, recorded; no earlier validated deployment to compare with.
            with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=100) as load:
                first = await deploy(client, "1.0.0")
            load.stop()
            assert first["status"] == "succeeded" and first["validation"]["passed"] is True, first
            report = await validate_under_load(client, port)
            assert report["verdict"] == "pass", report["reasons"]
            assert report["recommendation"].startswith("continue"), report["recommendation"]
            assert report["recorded"] is True and report["deployment_id"] == first["id"], report["record_note"]
            assert report["metrics"]["baseline_used"].startswith("none:"), report["metrics"]
            assert (await record_of(client, first["id"]))["validation"]["verdict"] == "pass"

            # 2.0.0 answers in 150 ms: under the 400 ms warn level, so its rollout passes, but more than twice
            # the recorded normal of 1.0.0 -> warn, investigate, and the report names the baseline it used.
            with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=100) as load:
                second = await deploy(client, "2.0.0")
            load.stop()
            assert second["status"] == "succeeded" and second["validation"]["passed"] is True, second
            report = await validate_under_load(client, port)
            assert report["verdict"] == "warn", report["reasons"]
            assert report["recommendation"].startswith("investigate for 5 minutes"), report["recommendation"]
            assert "roll back (to 1.0.0" in report["recommendation"], report["recommendation"]
            metrics = report["metrics"]
            assert metrics["baseline_used"].startswith(f"recorded: 1.0.0 as validated in {first['id']}"), metrics
            assert metrics["recorded_baseline"]["deployment_id"] == first["id"]
            assert "2x" in metrics["reason"] and "pre-deploy baseline" in metrics["reason"], metrics["reason"]
            assert report["recorded"] is True and report["deployment_id"] == second["id"]

            # Asked about 1.0.0, which no longer serves: judged what serves, nothing written onto 1.0.0.
            before = (await record_of(client, first["id"]))["validation"]
            report = await validate_under_load(client, port, deployment_id=first["id"])
            assert report["serving"] == ["2.0.0"] and report["metrics"]["version"] == "2.0.0"
            assert report["recorded"] is False
            assert f"not recorded on {first['id']}" in report["record_note"], report["record_note"]
            assert "not the current deployment" in report["record_note"], report["record_note"]
            assert (await record_of(client, first["id"]))["validation"] == before

            # 3.0.0 fails half its requests: fail -> roll back now, to the last validated version; and the
            # fail is recorded, so rollback will look past it.
            third = await promoted_past(client, "3.0.0")
            report = await validate_under_load(client, port)
            assert report["verdict"] == "fail", report["reasons"]
            assert report["recommendation"].startswith("roll back now (to 2.0.0"), report["recommendation"]
            assert any("error rate" in reason and "critical" in reason for reason in report["reasons"])
            assert report["recorded"] is True
            assert (await record_of(client, third["id"]))["validation"]["verdict"] == "fail"

            # 4.0.0 applied an irreversible migration and fails: fix forward, never roll back.
            await promoted_past(client, "4.0.0")
            report = await validate_under_load(client, port)
            assert report["verdict"] == "fail", report["reasons"]
            advice = report["recommendation"]
            assert advice.startswith("fix forward now") and "do not roll the application back" in advice, advice
            assert "roll back now" not in advice

            # 5.0.0, irreversible too, is slow: a warn after an irreversible migration says fix forward as well.
            fifth = await promoted_past(client, "5.0.0")
            report = await validate_under_load(client, port)
            assert report["verdict"] == "warn", report["reasons"]
            advice = report["recommendation"]
            assert advice.startswith("investigate for 5 minutes"), advice
            assert "fix forward" in advice and "do not roll the application back" in advice, advice
            assert "then roll back" not in advice
            stored = (await record_of(client, fifth["id"]))["validation"]
    finally:
        app.close()

    # A read-only session reports the same checks but writes nothing.
    (folder / "deploy.toml").write_text(config(port, read_only=True))
    readonly = App.load(folder / "deploy.toml")
    try:
        async with Client(build_server(readonly)) as client:
            report = await validate_under_load(client, port)
            assert report["verdict"] == "warn" and report["deployment_id"] == fifth["id"]
            assert report["recorded"] is False and "read-only" in report["record_note"], report["record_note"]
            assert (await record_of(client, fifth["id"]))["validation"] == stored
    finally:
        readonly.close()
    assert time.monotonic() - started < 120, "validate scenarios took far too long"


def test_tool_listing_says_validate_records_on_the_current_deployment() -> None:
    from deploy_mcp.server.toolset import SCHEMA_FILE

    listing = {tool["name"]: tool for tool in json.loads(SCHEMA_FILE.read_text())}
    validate = listing["validate"]
    description = " ".join(validate["description"].split())
    assert validate["annotations"]["readOnlyHint"] is True, "validate changes nothing that runs"
    assert "records its verdict on the current deployment" in description, description
    assert "never under policy.read_only" in description, description


# -- the recorded baseline is compared by the analysis's own rule ------------------------------------------------


def _findings_before(current: MetricSnapshot, prior: RecordedBaseline, thresholds: Thresholds) -> tuple[bool, bool]:
    """validate's own comparison as it was before it used core.analysis (error rate above normal, latency > 2x)."""
    above = slower = False
    if prior.error_rate is not None:
        normal = prior.error_rate
        standard_error = math.sqrt(normal * (1 - normal) / max(1, current.requests))
        above = current.error_rate - normal > max(thresholds.error_rate.warn / 2, 3.0 * standard_error)
    if prior.latency_p95_ms is not None and current.p95_ms is not None:
        floor = 0.1 * thresholds.latency_p95_ms.warn
        slower = current.p95_ms > 2.0 * prior.latency_p95_ms and current.p95_ms - prior.latency_p95_ms >= floor
    return above, slower


@settings(max_examples=400, deadline=None)
@given(
    requests=st.integers(min_value=0, max_value=50_000),
    error_rate=st.floats(min_value=0, max_value=1),
    p95=st.none() | st.floats(min_value=0, max_value=5_000),
    normal=st.none() | st.floats(min_value=0, max_value=1),
    normal_p95=st.none() | st.floats(min_value=0, max_value=5_000),
    warn=st.sampled_from([0.001, 0.01, 0.02]),
)
def test_the_recorded_baseline_gives_the_verdicts_it_gave_before(
    requests: int, error_rate: float, p95: float | None, normal: float | None, normal_p95: float | None, warn: float
) -> None:
    """Same numbers, same findings: validate's comparison with a recorded baseline is core.analysis's now."""
    current = MetricSnapshot(
        version="2.0.0", window_seconds=60, requests=requests, errors=round(error_rate * requests),
        error_rate=error_rate, p95_ms=p95,
    )  # fmt: skip
    prior = RecordedBaseline(
        deployment_id="deploy-2026-12-04-001", version="1.0.0", error_rate=normal, latency_p95_ms=normal_p95
    )
    thresholds = Thresholds(error_rate=Tier(warn=warn, critical=0.05))
    findings = _against_recorded(current, prior, thresholds, "2.0.0")
    above, slower = _findings_before(current, prior, thresholds)
    assert any(f.startswith("error rate") for f in findings) is above
    assert any(f.startswith("p95 latency") for f in findings) is slower
    named = "the pre-deploy baseline's", "(1.0.0 as validated in deploy-2026-12-04-001)"
    assert all(name in f for f in findings for name in named)

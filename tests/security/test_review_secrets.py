"""Review of issue 9 item 3: what a service *answers* is output too, not only what it prints when it crashes.

A release whose error page prints its configuration (a 500 that shows the database URL and the API key, as many
frameworks' debug pages do) answered the health and smoke checks with it, and the body's excerpt became the
verdict, the deployment's reason, its events and the ledger's record, and validate's report: every agent read the
service's secrets there. The answer is now masked like crash output: the service's env values and secret shapes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hostile_project import ANALYSIS, SERVICE, cli, spy_project
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.server.app import build_server

__all__ = ["spy_project"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.anyio

API_KEY = "tok-5b2e8d11aa"
URL_PASSWORD = "url-pw-0c4f2e"
ERROR_PAGE = "error: cannot reach the database with key {API_KEY} at postgresql://app:" + URL_PASSWORD + "@db/x"


def error_page_project(root: Path) -> None:
    port = int((root / "port").read_text())
    command = json.dumps([sys.executable, str(SERVICE), "--port", "{port}"])
    env = {"API_KEY": API_KEY, "BOOM_WITH": ERROR_PAGE, "BREAK_FILE": str(root / "broken")}
    (root / "deploy.toml").write_text(
        f"""
[services.spy]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health"]
env = {{ {", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())} }}

[services.spy.environments.staging]
strategy = "rolling"
port = {port}
analysis = {ANALYSIS}
""",
        encoding="utf-8",
    )


def assert_masked(text: str, where: str) -> None:
    assert API_KEY not in text, f"the service's API key leaked in {where}"
    assert URL_PASSWORD not in text, f"the database password leaked in {where}"


async def test_an_error_page_that_prints_the_configuration_stays_out_of_reasons_and_the_ledger(
    spy_project: Path,
) -> None:
    error_page_project(spy_project)
    started = cli("deploy", "spy", "1.0.0", "--environment", "staging", cwd=spy_project)
    ids = [word for word in started.stdout.split() if word.startswith("deploy-") and word[-1].isdigit()]
    assert ids, started.stdout + started.stderr
    deployment = ids[0].rstrip(":")
    (spy_project / "broken").touch()  # the release runs; now its health answers with the error page

    # validate, as an agent calls it while the release runs: the failing smoke check is reported, masked.
    app = App.load(spy_project / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            checked = await client.call_tool("validate", {"service": "spy", "environment": "staging"})
        report = json.dumps(checked.structured_content) if checked.structured_content else checked.content[0].text
    finally:
        app.close()
    # It still says which check failed and how.
    assert "/health: answered 500: error: cannot reach the database" in report, report
    assert_masked(report, "validate's report")

    # The final checks fail on the error page: the verdict, the reason, the events and the record are masked.
    promoted = cli("promote", deployment, cwd=spy_project)
    output = promoted.stdout + promoted.stderr
    assert "answered 500: error: cannot reach the database" in output, output
    assert_masked(output, "the CLI's output")
    app = App.load(spy_project / "deploy.toml")
    try:
        records = app.ledger().list(service="spy")
        recorded = json.dumps([r.model_dump(mode="json") for r in records])
        events = json.dumps([e.model_dump(mode="json") for r in records for e in app.ledger().events(r.id)])
    finally:
        app.close()
    assert "answered 500" in recorded + events
    assert_masked(recorded + events, "the ledger")

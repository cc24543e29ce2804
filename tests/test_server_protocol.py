"""The MCP face, tested the way clients use it: in memory, over stdio, and on both protocol versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from deploy_mcp.app import App
from deploy_mcp.resources import catalog
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
PROTOCOLS = ["legacy", "2026-07-28"]  # legacy negotiates 2025-11-25
EXPECTED_TOOLS = {"plan_deployment", "deployment_history"}


def server_for(project: Path | None) -> object:
    return build_server(App.load(project / "deploy.toml" if project else None, start=Path("/")))


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_both_protocol_versions_negotiate(project_dir: Path, protocol: str) -> None:
    async with Client(server_for(project_dir), mode=protocol) as client:
        assert client.protocol_version == ("2025-11-25" if protocol == "legacy" else "2026-07-28")
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= EXPECTED_TOOLS
    for name in EXPECTED_TOOLS:
        assert tools[name].annotations.read_only_hint is True
        assert tools[name].annotations.destructive_hint is False
        assert tools[name].output_schema is not None, f"{name} must return structured output"
        assert tools[name].description


async def test_plan_deployment_returns_the_canary_steps(project_dir: Path, protocol: str) -> None:
    async with Client(server_for(project_dir), mode=protocol) as client:
        result = await client.call_tool(
            "plan_deployment", {"service": "web", "version": "2.0.0", "environment": "production"}
        )
    assert not result.is_error, result.content
    plan = result.structured_content
    assert plan["strategy"] == "canary"
    weights = [step["weights"] for step in plan["steps"] if step["action"] == "set_weights"]
    assert [w["2.0.0"] for w in weights if w] == [5, 25, 50, 100] or plan["warnings"], plan
    assert plan["recommendation"]["reason"]
    assert any(gate["name"] for gate in plan["gates"])


async def test_unknown_service_is_a_clear_error_not_a_traceback(project_dir: Path, protocol: str) -> None:
    async with Client(server_for(project_dir), mode=protocol) as client:
        result = await client.call_tool(
            "plan_deployment", {"service": "webb", "version": "1.0.0", "environment": "production"}
        )
    assert result.is_error
    text = result.content[0].text
    assert "webb" in text and "web" in text
    assert "Traceback" not in text


async def test_bad_argument_types_are_rejected_with_the_field_named(project_dir: Path) -> None:
    async with Client(server_for(project_dir)) as client:
        result = await client.call_tool("deployment_history", {"limit": 0})
    assert result.is_error
    assert "limit" in result.content[0].text


async def test_history_is_empty_with_a_hint_before_any_deployment(project_dir: Path) -> None:
    async with Client(server_for(project_dir)) as client:
        result = await client.call_tool("deployment_history", {})
    assert result.structured_content["records"] == []
    assert result.structured_content["hint"] == "no deployments recorded yet"
    assert not (project_dir / ".deploy").exists(), "reading history must not create the ledger"


async def test_history_shows_records_newest_first(project_dir: Path) -> None:
    app = App.load(project_dir / "deploy.toml")
    for version in ("1.0.0", "1.1.0"):
        app.ledger().create(service="web", version=version, environment="staging", strategy="rolling")
    async with Client(build_server(app)) as client:
        result = await client.call_tool("deployment_history", {"service": "web"})
        missing = await client.call_tool("deployment_history", {"service": "nope"})
    assert [r["version"] for r in result.structured_content["records"]] == ["1.1.0", "1.0.0"]
    assert missing.is_error and "nope" in missing.content[0].text
    app.close()


async def test_every_resource_is_readable_and_non_empty(project_dir: Path, protocol: str) -> None:
    async with Client(server_for(project_dir), mode=protocol) as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        uris = {str(r.uri) for r in resources}
        expected = {f"deploy://checklists/{n}" for n in catalog.CHECKLISTS} | {
            f"deploy://references/{n}" for n in catalog.REFERENCES
        }
        expected |= {"deploy://deployments", "deploy://config", "deploy://capabilities"}
        assert expected <= uris
        assert {"deploy://checklists/pre-deployment", "deploy://references/rollback-procedures"} <= uris
        assert "deploy://deployments/{deployment_id}" in {t.uri_template for t in templates}
        for uri in sorted(expected):
            contents = (await client.read_resource(uri)).contents
            assert contents and contents[0].text.strip(), uri


# Commands as written in deploy.toml and as deploy://config shows them: quoted values are masked whole (quotes kept),
# a bare secret flag's next item is its value even when it starts with "-", and mysql's glued -p<password> is masked
# for mysql-like programs only: elsewhere -p is a port or a path.
COMMANDS = {
    "quoted": (
        ["sh", "-c", "sh -c 'app --password=\"pw-double\"' --password 'pw single' && DB_PASS=\"pw assigned\" app"],
        ["sh", "-c", "sh -c 'app --password=\"****\"' --password '****' && DB_PASS=\"****\" app"],
    ),
    "flags": (
        ["app", "--pass", "pw-pass-flag", "--auth", "user:pw-auth-flag", "--password", "-pw-dash"],
        ["app", "--pass", "****", "--auth", "****", "--password", "****"],
    ),
    "mysql": (
        ["mysql", "-u", "root", "-ppw-mysql-glued", "-P3306", "-p", "db"],
        ["mysql", "-u", "root", "-p****", "-P3306", "-p", "db"],
    ),
    "mysqlshell": (["sh", "-c", "mysqldump -ppw-dump-glued db"], ["sh", "-c", "mysqldump -p**** db"]),
    "ports": (["app", "-p", "8080", "-p9090", "--port=8080"], ["app", "-p", "8080", "-p9090", "--port=8080"]),
    "module": (
        ["sh", "-c", "python -m app -p 8080 --bypass cache"],
        ["sh", "-c", "python -m app -p 8080 --bypass cache"],
    ),
}
COMMAND_SECRETS = ["pw-double", "pw single", "pw assigned", "pw-pass-flag", "pw-auth-flag", "pw-dash", "pw-mysql-glued"]
COMMAND_SECRETS += ["pw-dump-glued"]


async def test_config_resource_masks_secrets(project_dir: Path) -> None:
    config = project_dir / "deploy.toml"
    config.write_text(
        config.read_text()
        + """
[services.worker]
command = ["python", "-m", "worker", "--db-password=hunter2-flag", "--api-token", "tok-list-item", "--port", "9000"]
test_command = ["sh", "-c", "DB_PASSWORD=pw-in-shell ./run-tests --secret-key key-in-shell"]
env = { DB_PASS = "db-pass-value", STRIPE_KEY = "sk_live_value", SESSION_SIGNING = "signing-value" }

[services.worker.versions."2.0.0"]
env = { SENTRY_DSN = "https://user:dsn-password@sentry.example/1" }

[targets.prometheus]
url = "https://metrics:prom-password@prometheus.example"
"""
        + "".join(f"\n[services.{name}]\ncommand = {json.dumps(command)}\n" for name, (command, _) in COMMANDS.items()),
        encoding="utf-8",
    )
    async with Client(server_for(project_dir)) as client:
        text = (await client.read_resource("deploy://config")).contents[0].text
    body = json.loads(text)
    assert body["config_error"] is None
    leaked = ["s3cr3t-value", "info", "hunter2-flag", "tok-list-item", "pw-in-shell", "key-in-shell", "db-pass-value"]
    leaked += ["sk_live_value", "signing-value", "dsn-password", "prom-password"]
    assert [secret for secret in leaked if secret in text] == []
    services = body["config"]["services"]
    assert services["web"]["env"] == {"API_TOKEN": "****", "LOG_LEVEL": "****"}, "env values are masked, names kept"
    assert services["worker"]["env"] == {"DB_PASS": "****", "STRIPE_KEY": "****", "SESSION_SIGNING": "****"}
    assert services["worker"]["command"] == [
        "python", "-m", "worker", "--db-password=****", "--api-token", "****", "--port", "9000"
    ]  # fmt: skip
    assert services["worker"]["test_command"][2] == "DB_PASSWORD=**** ./run-tests --secret-key ****"
    assert body["config"]["targets"]["prometheus"]["url"] == "https://****@prometheus.example"
    assert [secret for secret in COMMAND_SECRETS if secret in text] == []
    assert {name: services[name]["command"] for name in COMMANDS} == {
        name: shown for name, (_, shown) in COMMANDS.items()
    }


async def test_capabilities_say_what_this_session_may_do(project_dir: Path) -> None:
    async with Client(server_for(project_dir)) as client:
        caps = json.loads((await client.read_resource("deploy://capabilities")).contents[0].text)
    assert caps["configured"] is True
    assert caps["mode"] == "greenfield"
    assert caps["services"] == {"web": ["staging", "production"]}
    assert caps["read_only"] is False
    assert caps["production"] == {"web": ["production"]}  # what needs the user's confirmation, per service


async def test_deployment_resource_by_id(project_dir: Path) -> None:
    app = App.load(project_dir / "deploy.toml")
    record = app.ledger().create(service="web", version="1.0.0", environment="staging", strategy="rolling")
    app.ledger().append_event(record.id, "started", "rolling 1.0.0 to staging")
    async with Client(build_server(app)) as client:
        body = json.loads((await client.read_resource(f"deploy://deployments/{record.id}")).contents[0].text)
        recent = json.loads((await client.read_resource("deploy://deployments")).contents[0].text)
    assert body["record"]["id"] == record.id
    assert body["events"][0]["message"] == "rolling 1.0.0 to staging"
    assert [r["id"] for r in recent] == [record.id]
    app.close()


async def test_every_prompt_renders_and_names_our_tools(project_dir: Path, protocol: str) -> None:
    arguments = {
        "ship": {"service": "web", "environment": "production"},
        "hotfix": {"service": "web", "version": "1.0.1", "reason": "checkout returns 500"},
        "rollback": {"service": "web", "environment": "production"},
    }
    async with Client(server_for(project_dir), mode=protocol) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert names == set(arguments)
        for name, args in arguments.items():
            messages = (await client.get_prompt(name, args)).messages
            text = messages[0].content.text
            assert "web" in text
            assert "rollback" in text and "validate" in text


async def test_without_deploy_toml_the_server_still_serves(tmp_path: Path) -> None:
    app = App.load(None, start=tmp_path)
    async with Client(build_server(app)) as client:
        caps = json.loads((await client.read_resource("deploy://capabilities")).contents[0].text)
        checklist = (await client.read_resource("deploy://checklists/rollback")).contents[0].text
        history = await client.call_tool("deployment_history", {})
        plan = await client.call_tool("plan_deployment", {"service": "web", "version": "1", "environment": "prod"})
    assert caps["configured"] is False and caps["read_only"] is True
    assert "deploy-mcp init" in caps["hint"]
    assert checklist.strip()
    assert "deploy-mcp init" in history.structured_content["hint"]
    assert plan.is_error and "deploy-mcp init" in plan.content[0].text


async def test_invalid_deploy_toml_is_reported_by_every_tool(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text('[services.web.environments.production]\nstrategy = "canery"\n')
    async with Client(build_server(App.load(tmp_path / "deploy.toml"))) as client:
        caps = json.loads((await client.read_resource("deploy://capabilities")).contents[0].text)
        plan = await client.call_tool("plan_deployment", {"service": "web", "version": "1", "environment": "x"})
    assert "canery" in caps["config_error"]
    assert plan.is_error and "services.web.environments.production.strategy" in plan.content[0].text


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stdio_subprocess(project_dir: Path, protocol: str) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "deploy_mcp", "serve"],
        env={"DEPLOY_MCP_CONFIG": str(project_dir / "deploy.toml")},
        cwd=str(project_dir),
    )
    async with Client(params, mode=protocol) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool(
            "plan_deployment", {"service": "web", "version": "2.0.0", "environment": "staging"}
        )
        checklist = (await client.read_resource("deploy://checklists/pre-deployment")).contents[0].text
    assert tools >= EXPECTED_TOOLS
    assert result.structured_content["strategy"] == "rolling"
    assert checklist.startswith("#")


async def test_cached_tool_listing_matches_the_functions(tmp_path: Path) -> None:
    """tools/list is answered from tool_schemas.json at start-up; it must be what the functions declare."""
    from deploy_mcp.server.toolset import SCHEMA_FILE, eager_listing

    cached = json.loads(SCHEMA_FILE.read_text())
    fresh = await eager_listing(App.load(None, start=tmp_path))
    assert cached == fresh, "tool_schemas.json is stale: run `python -m deploy_mcp.server.toolset`"


async def test_tools_listed_before_and_after_first_call_are_identical(project_dir: Path) -> None:
    async with Client(server_for(project_dir)) as client:
        before = (await client.list_tools()).tools
        await client.call_tool("deployment_history", {})
        await client.call_tool("plan_deployment", {"service": "web", "version": "2", "environment": "staging"})
        after = (await client.list_tools()).tools
    assert [t.model_dump() for t in before] == [t.model_dump() for t in after]


async def test_unknown_deployment_id_reaches_the_client_as_a_clear_error(
    project_dir: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(server_for(project_dir), mode=protocol) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource("deploy://deployments/deploy-20250101-999")
    assert raised.value.error.code == INVALID_PARAMS, "an unknown id is 'not found', not a server failure"
    assert "no deployment 'deploy-20250101-999'" in raised.value.error.message
    assert "deploy://deployments" in raised.value.error.message, "the message says where to find the ids"
    assert "Traceback" not in caplog.text


def _corrupt_ledger(project: Path) -> Path:
    ledger = project / ".deploy" / "ledger.db"
    ledger.parent.mkdir()
    ledger.write_text("these are notes, not a SQLite database\n" * 50, encoding="utf-8")
    return ledger


async def test_corrupt_ledger_is_a_clear_tool_error_naming_the_file_and_the_fix(
    project_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = _corrupt_ledger(project_dir)
    async with Client(server_for(project_dir)) as client:
        result = await client.call_tool("deployment_history", {})
    assert result.is_error
    text = result.content[0].text
    assert str(ledger) in text and "move it aside" in text, text
    assert text != "Error executing tool deployment_history", "a crash message would hide the cause"
    assert "Traceback" not in caplog.text


async def test_corrupt_ledger_is_a_clear_resource_error(
    project_dir: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = _corrupt_ledger(project_dir)
    async with Client(server_for(project_dir), mode=protocol) as client:
        for uri in ("deploy://deployments", "deploy://deployments/deploy-20250101-001"):
            with pytest.raises(MCPError) as raised:
                await client.read_resource(uri)
            message = raised.value.error.message
            assert str(ledger) in message and "move it aside" in message, (uri, message)
            assert not message.startswith("Error "), message
    assert "Traceback" not in caplog.text

"""generate_deploy_md through the MCP protocol, on sample projects built here: the sections exist, their commands
are the configured ones, the rollback procedure is always there, regenerating changes nothing, the parts a person
wrote survive, and a bad path or a broken config writes nothing. Also: this repository's own DEPLOY.md is current.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.core.records import DeploymentRecord, Status, Validation
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[1]
SECTIONS = [
    "Overview",
    "Environments and strategies",
    "Pre-deployment checklist",
    "Deployment",
    "Validation",
    "Rollback",
    "Monitoring",
]

PYTHON_SERVICE = """
project = "orders"

[services.orders]
command = ["python", "-m", "orders", "--port", "{port}"]
replicas = 3
health = "/healthz"
smoke = ["/healthz", "/orders", "!/nope"]

[services.orders.versions."2.4.0"]
migrations_irreversible = true

[services.orders.environments.staging]
strategy = "rolling"
port = 18181

[services.orders.environments.production]
strategy = "canary"
steps = [10, 50, 100]
port = 18180
requires = ["staging"]
thresholds = { error_rate = { warn = 0.02, critical = 0.08 }, latency_p95_ms = { warn = 300, critical = 900 } }
"""

KUBERNETES = """
project = "shop"

[targets.kubernetes]
context = "prod-eu"
namespace = "default"

[services.web]
target = "kubernetes"
image = "registry.example.com/shop/web:{version}"
replicas = 4

[services.web.environments.staging]
namespace = "shop-staging"
strategy = "rolling"

[services.web.environments.production]
namespace = "shop"
strategy = "blue-green"
requires = ["staging"]

[services.api]
target = "kubernetes"
image = "registry.example.com/shop/api"
replicas = 6

[services.api.environments.production]
namespace = "shop"
strategy = "canary"
steps = [20, 100]
"""

ENTERPRISE = """
mode = "brownfield-enterprise"
project = "payments"

[policy]
on_call = "Dana Ruiz (pager 555-0100)"
escalation_path = ["on-call", "team-lead", "director"]

[[policy.deploy_windows]]
days = ["tue", "thu"]
start = "02:00"
end = "04:00"

[targets.ecs]
cluster = "payments"
region = "eu-west-1"

[services.billing]
target = "ecs"
image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/billing:{version}"
replicas = 3

[services.billing.environments.staging]
cluster = "payments-staging"
strategy = "rolling"

[services.billing.environments.production]
strategy = "canary"
steps = [10, 50, 100]
requires = ["staging"]

[services.portal]
command = ["python", "-m", "portal", "--port", "{port}"]
flag = { name = "new-portal", file = ".deploy/flags.json" }

[services.portal.environments.staging]
strategy = "rolling"
port = 18281

[services.portal.environments.production]
strategy = "feature-flag"
port = 18280
requires = ["staging"]
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder


def python_service(root: Path) -> Path:
    return write(
        root,
        {
            "deploy.toml": PYTHON_SERVICE,
            "pyproject.toml": '[project]\nname = "orders"\nversion = "2.3.1"\n',
            "Dockerfile": """
                FROM python:3.12-slim AS base
                COPY . /app
                EXPOSE 8000
                HEALTHCHECK CMD curl -f http://localhost:8000/healthz || exit 1
                CMD ["python", "-m", "orders"]
            """,
            "migrations/0001_create_orders.up.sql": "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
            "migrations/0001_create_orders.down.sql": "DROP TABLE orders;\n",
            "migrations/0002_add_total.up.sql": "ALTER TABLE orders ADD COLUMN total numeric;\n",
            ".github/workflows/ci.yml": "name: Orders CI\non: [push]\njobs: {}\n",
        },
    )


def kubernetes_project(root: Path) -> Path:
    return write(
        root,
        {
            "deploy.toml": KUBERNETES,
            "Dockerfile": "FROM nginx:1.27\nEXPOSE 80\n",
            "k8s/web.yaml": """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: web
                  namespace: shop
                  labels:
                    app: web
                spec:
                  replicas: 4
                ---
                apiVersion: v1
                kind: Service
                metadata:
                  name: web
                  namespace: shop
            """,
            "k8s/api.yaml": """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: api
                  namespace: shop-legacy
            """,
        },
    )


def enterprise_project(root: Path) -> Path:
    return write(root, {"deploy.toml": ENTERPRISE, "package.json": '{"name": "payments", "version": "7.1.0"}\n'})


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Path], Any]]:
    """An in-memory MCP client on a project folder; every App is closed afterwards."""
    apps: list[App] = []

    def open_project(root: Path) -> Client:
        app = App.load(root / "deploy.toml") if (root / "deploy.toml").exists() else App.load(None, start=root)
        apps.append(app)
        return Client(build_server(app))

    try:
        yield open_project
    finally:
        for app in apps:
            app.close()


async def generate(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("generate_deploy_md", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refusal(client: Client, **arguments: Any) -> str:
    result = await client.call_tool("generate_deploy_md", arguments)
    assert result.is_error, "expected a refusal"
    text = result.content[0].text
    assert "Traceback" not in text
    return text


def section(content: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level (code fences skipped)."""
    level = len(heading.split(" ", 1)[0])
    lines = content.splitlines()
    start = lines.index(heading)
    fence = False
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"^(#+) ", line)) and len(match.group(1)) <= level:
            return "\n".join(lines[start:index]) + "\n"
    return "\n".join(lines[start:]) + "\n"


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


# -- the three sample projects ------------------------------------------------------------------------------------


async def test_python_service_commands_match_the_configuration(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path)
    async with connect(root) as client:
        result = await generate(client, write=True)
    content = (root / "DEPLOY.md").read_text(encoding="utf-8")
    assert result["written"] and result["changed"] and result["content"] == content
    assert Path(result["path"]) == (root / "DEPLOY.md").resolve()
    assert result["sections"][: len(SECTIONS)] == SECTIONS and result["sections"][-1] == "Escalation path"

    overview = section(content, "## Overview")
    assert "2.3.1 (`pyproject.toml`)" in overview
    assert "`Dockerfile`: based on `python:3.12-slim`, exposes 8000" in overview
    assert "Migrations in `migrations/` (sql, 3 files" in overview
    assert "`.github/workflows/ci.yml` (Orders CI)" in overview

    plans = section(content, "#### orders in production: canary")
    assert "Traffic steps: 10% -> 50% -> 100%" in plans
    assert "Send 10% of traffic to NEW, 90% to CURRENT." in plans
    assert "**requires-staging**" in plans

    deployment = section(content, "## Deployment")
    assert 'deploy(service="orders", version="NEW", environment="production")' in deployment
    assert "python -m build" in deployment
    assert "curl -fsS --max-time 5 http://127.0.0.1:18180/healthz" in deployment

    validation = section(content, "## Validation")
    assert "BASE_URL=http://127.0.0.1:18180" in validation
    assert '"$BASE_URL/nope"    # expect 404' in validation and '"$BASE_URL/orders"    # expect 200' in validation
    assert "| orders | production | 2% / 8% | 300 / 900 ms |" in validation
    assert "| orders | staging | 1% / 5% | 500 / 2000 ms |" in validation

    rollback = section(content, "### Roll back orders in production")
    # What the runner does: undo during the canary, a started-again CURRENT after it.
    assert "CURRENT keeps its full size until the last step, so all traffic goes back to CURRENT" in rollback
    assert "CURRENT no longer runs (the last step stopped it): it is started again at full size" in rollback
    assert "still running at full size" not in rollback
    staging = section(content, "### Roll back orders in staging")
    assert "CURRENT is scaled back up to full size in one step" in staging and "not batch by batch" in staging
    assert "same batches" not in content
    assert 'rollback(service="orders", environment="production", reason="error rate above 8% after NEW")' in rollback
    assert "deploy-mcp local status" in rollback
    assert "orders 2.4.0" in section(content, "## Rollback")  # declared irreversible: fix forward
    assert "apply its down migration from `migrations/`" in section(content, "### Order of operations")
    assert 'lint_migrations(path="migrations")' in section(content, "### Database")

    alerts = yaml.safe_load(fenced(section(content, "## Monitoring"), "yaml")[0])
    production = next(group for group in alerts["groups"] if group["name"] == "orders-production")
    error_rule, latency_rule = production["rules"]
    assert error_rule["expr"].endswith("> 0.08") and 'environment="production"' in error_rule["expr"]
    assert latency_rule["expr"].endswith("> 0.9")

    for line in content.splitlines():  # template lines never run into each other
        assert line.count("- [ ]") <= 1, line
    assert "/tmp/" not in content and str(tmp_path) not in content


async def test_the_rollback_commands_name_the_version_a_rollback_restores(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path)
    app = App.load(root / "deploy.toml")
    try:
        ledger = app.ledger()

        def record(version: str, environment: str, status: Status = Status.SUCCEEDED) -> DeploymentRecord:
            validation = Validation(passed=status is Status.SUCCEEDED)
            return ledger.create(service="orders", version=version, environment=environment, strategy="canary",
                                 status=status, validation=validation)  # fmt: skip

        older = record("2.2.0", "production")
        serving = record("2.3.0", "production")
        record("2.3.1", "production", Status.ROLLED_BACK)  # its canary failed: 2.3.0 still serves
        only = record("2.3.0", "staging")
    finally:
        app.close()
    async with connect(root) as client:
        content = (await generate(client))["content"]
    rollback = section(content, "### Roll back orders in production")
    assert (
        f"A rollback now would revert **2.3.0** (`{serving.id}`) and restore **2.2.0**, the last version before it "
        f"that passed validation (`{older.id}`)."
    ) in rollback
    assert 'to="2.2.0"' in rollback and 'to="2.3.0"' not in rollback
    assert "deploy-mcp rollback orders --environment production --to 2.2.0" in rollback
    staging = section(content, "### Roll back orders in staging")
    assert "A rollback now would be refused: no earlier deployment of orders in staging passed validation" in staging
    assert f"from 2.3.0 ({only.id})" in staging
    assert "--to" not in staging and 'to="' not in staging
    assert not (root / "DEPLOY.md").exists(), "write defaults to false"


async def test_kubernetes_project_names_its_namespaces_and_deployments(tmp_path: Path, connect) -> None:
    root = kubernetes_project(tmp_path)
    async with connect(root) as client:
        result = await generate(client, write=True)
    content = result["content"]
    kubectl = "kubectl --context prod-eu"

    assert "`k8s/web.yaml`: Deployment `web` in namespace `shop`" in content
    build = section(content, "### Build and package")
    assert "docker build -t registry.example.com/shop/web:${VERSION} ." in build
    assert "docker push registry.example.com/shop/api:${VERSION}" in build

    staging = section(content, "### Roll back web in staging")
    assert f"{kubectl} -n shop-staging rollout undo deployment/web" in staging
    assert f"{kubectl} -n shop-staging rollout undo deployment/web --to-revision=REVISION" in staging
    assert f"{kubectl} -n shop-staging rollout status deployment/web --timeout=3m" in staging

    blue_green = section(content, "### Roll back web in production")
    assert f"""{kubectl} -n shop patch service web -p '{{"spec":{{"selector":{{"app":"web","slot":"blue"}}}}}}'""" in (
        blue_green
    )
    assert f"{kubectl} -n shop rollout status deployment/web-blue" in blue_green

    canary = section(content, "### Roll back api in production")
    assert f"{kubectl} -n shop scale deployment/api-canary --replicas=0" in canary
    assert f"{kubectl} -n shop apply -f k8s" in section(content, "## Deployment")
    assert "| staging | no | rolling | configured | 4 | namespace `shop-staging` (context `prod-eu`) | - |" in content

    # the api manifest disagrees with deploy.toml: said in the result and in the document
    assert any("k8s/api.yaml puts Deployment api in namespace shop-legacy" in note for note in result["notes"])
    assert "k8s/api.yaml puts Deployment api in namespace shop-legacy" in section(content, "### Check these")


async def test_enterprise_project_has_the_change_record(tmp_path: Path, connect) -> None:
    root = enterprise_project(tmp_path)
    async with connect(root) as client:
        content = (await generate(client, write=True))["content"]
    assert "## Change record (brownfield-enterprise)" in content
    record_section = section(content, "## Change record (brownfield-enterprise)")
    assert (
        'deploy-mcp approve CHG-12345 --service billing --environment production --approved-by "YOUR NAME"'
        in record_section
    )
    assert 'deploy(service="billing", version="NEW", environment="production", change_id="CHG-12345")' in record_section
    assert "Deploy windows: tue, thu 02:00-04:00 UTC." in record_section
    assert "4 h of monitoring" in record_section
    record = json.loads(fenced(record_section, "json")[0])
    assert record["escalation_path"] == ["on-call", "team-lead", "director"]
    assert record["deploy_window"] == "tue, thu 02:00-04:00 UTC" and record["monitoring_period"] == "4 h"

    assert "| Version in the repository | 7.1.0 (`package.json`) |" in content
    ecs_staging = section(content, "### Roll back billing in staging")
    assert (
        "aws ecs update-service --region eu-west-1 --cluster payments-staging --service billing "
        "--task-definition billing:REVISION" in ecs_staging
    )
    assert (
        "aws ecs wait services-stable --region eu-west-1 --cluster payments-staging --services billing" in ecs_staging
    )
    ecs_canary = section(content, "### Roll back billing in production")
    assert '\\"TargetGroupArn\\":\\"$STABLE_TG\\",\\"Weight\\":100' in ecs_canary
    assert '\\"TargetGroupArn\\":\\"$NEW_TG\\",\\"Weight\\":0' in ecs_canary

    flag = section(content, "### Roll back portal in production")
    assert (
        """jq '.flags["new-portal"].defaultVariant = "off" | del(.flags["new-portal"].targeting)' .deploy/flags.json"""
        in flag
    )
    escalation = section(content, "## Escalation path")
    assert "1. on-call (Dana Ruiz (pager 555-0100))" in escalation and "3. director" in escalation
    assert "**change-approval** (approval" in section(content, "#### billing in production: canary")


# -- determinism and keep blocks ----------------------------------------------------------------------------------


async def test_regenerating_changes_nothing(tmp_path: Path, connect) -> None:
    root = kubernetes_project(tmp_path)
    async with connect(root) as client:
        first = await generate(client, write=True)
        before = (root / "DEPLOY.md").stat().st_mtime_ns
        again = await generate(client, write=True)
    assert again["content"] == first["content"]
    assert not again["changed"] and not again["written"]
    assert (root / "DEPLOY.md").stat().st_mtime_ns == before
    async with connect(root) as client:  # a new server process state: still the same bytes
        fresh = await generate(client)
    assert fresh["content"].encode() == (root / "DEPLOY.md").read_bytes()
    assert [p.name for p in root.iterdir() if p.name.startswith(".DEPLOY")] == [], "no temporary file left"


async def test_sections_a_person_wrote_survive_regeneration(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path)
    async with connect(root) as client:
        await generate(client, write=True)
    path = root / "DEPLOY.md"
    text = path.read_text(encoding="utf-8")
    edited = text.replace(
        "_Rollback steps specific to this project (a cache to flush, a partner to warn) go here; this block is kept "
        "when DEPLOY.md is regenerated._",
        "Flush the CDN: `cdnctl purge orders` | then tell the payments team.\n\n```bash\ncdnctl status\n```",
    )
    own = "<!-- deploy-mcp:keep smoke-by-hand -->\nAlso open /orders/42 in a browser.\n<!-- /deploy-mcp:keep -->"
    edited = edited.replace("### Thresholds\n", f"{own}\n\n### Thresholds\n")  # the end of "Health and smoke tests"
    orphan = (
        "## Our history\n\n<!-- deploy-mcp:keep history -->\nShipped by hand until 2023.\n<!-- /deploy-mcp:keep -->\n"
    )
    path.write_text(edited + "\n" + orphan, encoding="utf-8")
    (root / "deploy.toml").write_text(PYTHON_SERVICE.replace("critical = 0.08", "critical = 0.07"), encoding="utf-8")

    async with connect(root) as client:
        result = await generate(client, write=True)
        again = await generate(client, write=True)
    content = path.read_text(encoding="utf-8")
    assert result["written"] and not again["changed"], "regenerating a merged file is idempotent"
    assert "Flush the CDN: `cdnctl purge orders` | then tell the payments team." in section(content, "## Rollback")
    assert "| orders | production | 2% / 7% |" in content, "the configuration change is applied"
    health = section(content, "### Health and smoke tests")
    assert health.rstrip().endswith("Also open /orders/42 in a browser.\n<!-- /deploy-mcp:keep -->")
    kept = section(content, "## Kept notes")
    assert "Shipped by hand until 2023." in kept and "## Our history" not in content
    assert any("rollback-notes" in note for note in result["notes"])
    assert any("history" in note and "Kept notes" in note for note in result["notes"])


async def test_damaged_markers_are_reported_and_nothing_is_written(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path)
    async with connect(root) as client:
        await generate(client, write=True)
        path = root / "DEPLOY.md"
        damaged = path.read_text(encoding="utf-8").replace("<!-- /deploy-mcp:keep contacts -->\n", "")
        path.write_text(damaged, encoding="utf-8")
        message = await refusal(client, write=True)
    assert "keep block 'contacts' is never closed" in message and "line " in message
    assert path.read_text(encoding="utf-8") == damaged


# -- what is refused ----------------------------------------------------------------------------------------------


async def test_paths_outside_the_project_are_refused_and_nothing_is_written(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path / "project")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (outside / "victim.md").write_text("mine\n", encoding="utf-8")
    (root / "DEPLOY.md").symlink_to(outside / "victim.md")
    async with connect(root) as client:
        for path in ("../x.md", str(outside / "abs.md"), "escape/DEPLOY.md", "DEPLOY.md"):
            message = await refusal(client, path=path, write=True)
            assert "outside the project root" in message and str(root.resolve()) in message, message
        assert "not a Markdown file" in await refusal(client, path="deploy.toml", write=True)
        assert "does not exist" in await refusal(client, path="nope/DEPLOY.md", write=True)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.md"]
    assert (outside / "victim.md").read_text(encoding="utf-8") == "mine\n"
    assert not (tmp_path / "x.md").exists()


async def test_a_deploy_md_written_by_a_person_is_not_replaced(tmp_path: Path, connect) -> None:
    root = python_service(tmp_path)
    mine = "# How we deploy\n\nAsk Sam.\n"
    (root / "DEPLOY.md").write_text(mine, encoding="utf-8")
    async with connect(root) as client:
        message = await refusal(client, write=True)
        preview = await generate(client)
    assert "was not generated by deploy-mcp" in message and "DEPLOY.old.md" in message
    assert (root / "DEPLOY.md").read_text(encoding="utf-8") == mine
    assert preview["changed"] and not preview["written"] and "## Rollback" in preview["content"]
    assert any("written by a person" in note for note in preview["notes"])


async def test_broken_or_missing_configuration_is_a_clear_error(tmp_path: Path, connect) -> None:
    cases = {
        "typo": ('[services.web.environments.production]\nstrategy = "canery"\n', "strategy"),
        "no-services": ('mode = "greenfield"\n', "no services"),
        "no-environments": ('[services.web]\ncommand = ["x", "{port}"]\n', "[services.web.environments.staging]"),
        "flag-without-flag": (
            '[services.web]\ncommand = ["x", "{port}"]\n[services.web.environments.prod]\nstrategy = "feature-flag"\n',
            "[services.web.flag]",
        ),
        "not-toml": ("[services.web\n", "not valid TOML"),
    }
    for name, (config, expected) in cases.items():
        root = tmp_path / name
        root.mkdir()
        (root / "deploy.toml").write_text(config, encoding="utf-8")
        async with connect(root) as client:
            message = await refusal(client, write=True)
        assert expected in message, (name, message)
        assert not (root / "DEPLOY.md").exists(), name
    empty = tmp_path / "empty"
    empty.mkdir()
    async with connect(empty) as client:
        message = await refusal(client, write=True)
    assert "no deploy.toml found" in message and "deploy-mcp init" in message
    assert not (empty / "DEPLOY.md").exists()


async def test_the_tool_is_listed_as_writing_but_not_destructive(tmp_path: Path, connect) -> None:
    async with connect(python_service(tmp_path)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    annotations = tools["generate_deploy_md"].annotations
    assert annotations.read_only_hint is False and annotations.destructive_hint is False
    assert annotations.idempotent_hint is True
    assert set(tools["generate_deploy_md"].input_schema["properties"]) == {"path", "write"}


def test_a_document_without_its_rollback_procedure_is_refused() -> None:
    from deploy_mcp.deploymd.render import RenderError, require_rollback

    text = "# X\n\n## Rollback\n\n### Roll back web in production\n\nCall someone.\n\n## Monitoring\n"
    with pytest.raises(RenderError, match=r"web/production \(no commands\)"):
        require_rollback(text, [("web", "production")])
    with pytest.raises(RenderError, match="no Rollback section"):
        require_rollback("# X\n\n```\n## Rollback\n```\n", [("web", "production")])


# -- this repository's own DEPLOY.md ------------------------------------------------------------------------------


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "deploy_mcp.tools.deploy_md", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_this_repository_deploy_md_is_up_to_date() -> None:
    result = run_module("--config", str(REPO / "deploy.toml"), "--no-ledger", "--check", cwd=REPO)
    assert result.returncode == 0, result.stderr + result.stdout
    content = (REPO / "DEPLOY.md").read_text(encoding="utf-8")
    assert "### Roll back deploy-mcp in production" in content and "### Roll back docs in production" in content
    assert "## Documentation site" in content and "npm run docs:build" in content


def test_check_names_the_fix_when_the_file_is_stale(tmp_path: Path) -> None:
    root = python_service(tmp_path)
    assert run_module("--no-ledger", cwd=root).returncode == 0
    (root / "deploy.toml").write_text(PYTHON_SERVICE.replace("port = 18180", "port = 18190"), encoding="utf-8")
    stale = run_module("--no-ledger", "--check", cwd=root)
    assert stale.returncode == 1
    assert "DEPLOY.md is stale" in stale.stderr and "python -m deploy_mcp.tools.deploy_md --no-ledger" in stale.stderr
    assert "127.0.0.1:18190" in stale.stderr


def test_jinja2_is_not_imported_until_a_document_is_rendered() -> None:
    code = "import sys, deploy_mcp.tools.deploy_md, deploy_mcp.deploymd; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.stdout.strip() == "False", result.stderr

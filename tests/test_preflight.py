"""Preflight through the MCP protocol: the checklist with evidence, and deploy refusing on what it finds.

The registry is a real one (Debian's docker-registry) that the tests push images to over the distribution API;
git is a real repository; the deployment that goes through runs the example service on the local platform.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx
import mcp_types as types
import pytest
from local_fixtures import HELLO, free_port, wait_until_gone
from mcp import Client
from registry_fixture import RegistryServer, TokenAuth, registry, require_registry  # noqa: F401 (fixture)

from deploy_mcp.app import App
from deploy_mcp.core.records import Status
from deploy_mcp.server.app import build_server
from deploy_mcp.services.approvals import approve

pytestmark = pytest.mark.anyio
ALL_WEEK = (  # start == end: 24 hours, every day
    '[[policy.deploy_windows]]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
    'start = "00:00"\nend = "00:00"\n'
)


def service_config(*, image: str | None = None, port: int | None = None, extra: str = "", head: str = "") -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    image_line = f'image = "{image}"\n' if image else ""
    port_line = f"port = {port}\n" if port else ""
    return f"""{head}
[services.web]
command = {command}
{image_line}replicas = 1
health = "/health"
smoke = ["/health"]
{extra}
[services.web.environments.staging]
strategy = "rolling"
{port_line}analysis = {{ interval = "0.5s", bake = "1s", min_requests = 5 }}

[services.web.environments.production]
strategy = "rolling"
requires = ["staging"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def load(folder: Path, config: str) -> App:
    (folder / "deploy.toml").write_text(config, encoding="utf-8")
    return App.load(folder / "deploy.toml")


async def preflight(app: App, **arguments: Any) -> dict[str, Any]:
    async with Client(build_server(app)) as client:
        result = await client.call_tool("preflight", {"service": "web", "version": "1.0.0", **arguments})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def items(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in report["items"]}


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


# -- the artifact ------------------------------------------------------------------------------------------------


@pytest.fixture
def shipping(project: Path, registry: RegistryServer) -> Iterator[App]:  # noqa: F811 (the fixture)
    app = load(project, service_config(image=f"{registry.address}/web:{{version}}", port=free_port()))
    try:
        yield app
    finally:
        app.close()
        from deploy_mcp.targets.local import cli

        cli.stop(app.project, "web")
        assert wait_until_gone(project) == [], "processes left running"


async def test_a_missing_image_blocks_deploy_until_it_is_pushed(shipping: App, registry: RegistryServer) -> None:  # noqa: F811
    manifest = f"{registry.url}/v2/web/manifests/1.0.0"
    report = await preflight(shipping, environment="staging")
    artifact = items(report)["artifact"]
    assert report["passed"] is False and report["required_failures"] == ["artifact"]
    assert artifact["status"] == "failed" and artifact["required"] is True
    assert manifest in artifact["evidence"] and "404" in artifact["evidence"]
    assert f"docker push {registry.address}/web:1.0.0" in artifact["fix"]

    asked: list[str] = []

    async def user(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    progress: list[str] = []

    async def on_progress(_p: float, _t: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(build_server(shipping), elicitation_callback=user) as client:
        arguments = {"service": "web", "version": "1.0.0", "environment": "staging", "wait_seconds": 5}
        refused = await client.call_tool("deploy", arguments)
        assert refused.is_error
        message = text(refused)
        assert "preflight refused deploying web 1.0.0 to staging" in message
        assert "artifact" in message and manifest in message and "docker push" in message
        history = await client.call_tool("deployment_history", {})
        assert history.structured_content is not None and history.structured_content["records"] == []

        digest = registry.push("web", "1.0.0")
        checked = await client.call_tool("preflight", {"service": "web", "version": "1.0.0", "environment": "staging"})
        assert checked.structured_content is not None
        artifact = items(checked.structured_content)["artifact"]
        assert artifact["status"] == "passed" and digest in artifact["evidence"], artifact
        assert checked.structured_content["passed"] is True, checked.structured_content["summary"]

        started = await client.call_tool("deploy", arguments, progress_callback=on_progress)
        assert not started.is_error, text(started)
        assert started.structured_content is not None
        record = started.structured_content["record"]
        assert record["version"] == "1.0.0" and record["environment"] == "staging"
        assert asked == [], "staging needs no confirmation"
        assert any(message.startswith("preflight: web 1.0.0 to staging: ready") for message in progress), progress
        for _ in range(120):  # let it settle (no traffic: it may pause for a decision) before teardown
            if record["status"] not in ("pending", "in_progress"):
                break
            await anyio.sleep(0.25)
            status = await client.call_tool("deployment_status", {"deployment_id": record["id"]})
            assert status.structured_content is not None
            record = status.structured_content["record"]
        assert record["status"] in ("paused", "succeeded"), record

        registry.delete("web", "1.0.0")  # the tag disappears again: so does the pass
        again = await client.call_tool("preflight", {"service": "web", "version": "1.0.0", "environment": "staging"})
        assert again.structured_content is not None
        assert items(again.structured_content)["artifact"]["status"] == "failed"


async def test_a_registry_that_is_down_fails_the_item_with_clear_evidence(project: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    app = load(project, service_config(image=f"{address}/web:{{version}}"))
    try:
        report = await preflight(app, environment="staging")
    finally:
        app.close()
    artifact = items(report)["artifact"]
    assert artifact["status"] == "failed"
    assert f"could not reach the registry for HEAD http://{address}/v2/web/manifests/1.0.0" in artifact["evidence"]
    assert "refused" in artifact["evidence"].lower()
    assert f"check that the registry at http://{address} is up" in artifact["fix"]


async def test_the_local_target_with_a_command_has_no_artifact_to_check(project: Path) -> None:
    app = load(project, service_config())
    try:
        report = await preflight(app, environment="staging")
    finally:
        app.close()
    artifact = items(report)["artifact"]
    assert artifact["status"] == "not_applicable" and "services.web.command" in artifact["evidence"]
    assert report["passed"] is True, report["summary"]


# -- a registry behind token authentication, as public registries run --------------------------------------------


class TokenServer:
    """The token endpoint of a registry's auth service: hands out signed JWTs for the scope asked, or refuses."""

    def __init__(self, folder: Path, service: str = "test-registry", issuer: str = "test-issuer") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.service, self.issuer = service, issuer
        self.refuse = False
        self.requests: list[dict[str, list[str]]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-issuer")])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_path = folder / "token-cert.pem"
        self.certificate_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._der = base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def auth(self) -> TokenAuth:
        return TokenAuth(realm=self.realm, service=self.service, issuer=self.issuer, certificate=self.certificate_path)

    def token(self, scope: str) -> str:
        import jwt

        kind, name, actions = scope.split(":")
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [{"type": kind, "name": name, "actions": actions.split(",")}],
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self._der]})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                outer.requests.append(query)
                if outer.refuse or query.get("service") != [outer.service]:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": outer.token(query["scope"][0]), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


async def test_a_bearer_challenge_is_answered_with_an_anonymous_token(project: Path, tmp_path: Path) -> None:
    require_registry()
    with TokenServer(tmp_path) as tokens:
        server = RegistryServer(tmp_path / "registry", token_auth=tokens.auth()).start()
        try:
            assert httpx.get(f"{server.url}/v2/").status_code == 401, "the registry must demand a token"
            server.token = tokens.token("repository:web:pull,push")
            server.push("web", "1.0.0")
            app = load(project, service_config(image=f"{server.address}/web:{{version}}"))
            try:
                report = await preflight(app, environment="staging")
                tokens.refuse = True
                refused = await preflight(app, environment="staging")
            finally:
                app.close()
        finally:
            server.stop()
    artifact = items(report)["artifact"]
    assert artifact["status"] == "passed", artifact
    assert {"scope": ["repository:web:pull"], "service": ["test-registry"]} in tokens.requests
    artifact = items(refused)["artifact"]
    assert artifact["status"] == "failed"
    assert f"the realm {tokens.realm} refused one anonymously (401)" in artifact["evidence"]
    assert f"docker login {server.address}" in artifact["fix"]


# -- git -----------------------------------------------------------------------------------------------------------


async def test_git_clean_dirty_and_the_version_tag(project: Path) -> None:
    app = load(project, service_config())
    try:
        outside = items(await preflight(app, environment="staging"))
        assert outside["git-clean"]["status"] == "not_applicable"
        assert "not inside a git repository" in outside["git-clean"]["evidence"]

        git(project, "init", "-q", "-b", "main")
        git(project, "add", "deploy.toml")
        git(project, "commit", "-q", "-m", "release 1.0.0")
        app.ledger()  # the state folder (.deploy) exists from here on: it is not part of the release
        clean = items(await preflight(app, environment="staging"))
        assert clean["git-clean"]["status"] == "passed", clean["git-clean"]
        assert clean["git-commit"]["status"] == "warning"  # greenfield: reported, not required
        assert "tried v1.0.0, 1.0.0" in clean["git-commit"]["evidence"]
        assert "git tag v1.0.0" in clean["git-commit"]["fix"]

        git(project, "tag", "v1.0.0")
        commit = git(project, "rev-parse", "HEAD")
        tagged = items(await preflight(app, environment="staging"))
        assert tagged["git-commit"]["status"] == "passed"
        assert f"commit {commit[:12]} (v1.0.0)" in tagged["git-commit"]["evidence"]

        (project / "handler.py").write_text("print('uncommitted')\n")
        dirty = await preflight(app, environment="staging")
        assert items(dirty)["git-clean"]["status"] == "warning"
        assert "handler.py" in items(dirty)["git-clean"]["evidence"]
        assert dirty["passed"] is True  # greenfield does not require a clean tree
    finally:
        app.close()

    app = load(project, service_config(head='mode = "brownfield-enterprise"\n'))
    try:
        enterprise = await preflight(app, environment="staging")
    finally:
        app.close()
    assert items(enterprise)["git-clean"]["status"] == "failed" and items(enterprise)["git-clean"]["required"]
    assert "git-clean" in enterprise["required_failures"]


# -- promotion, and the enterprise items ---------------------------------------------------------------------------


async def test_staging_prerequisite_refuses_production_before_anyone_is_asked(project: Path) -> None:
    app = load(project, service_config())
    try:
        report = await preflight(app, environment="production")
        staging = items(report)["staging-prerequisite"]
        assert staging["status"] == "failed" and "web 1.0.0 has not succeeded in staging" in staging["evidence"]
        assert staging["fix"] == "deploy web 1.0.0 to staging and let it succeed, then deploy it to production"

        asked: list[str] = []

        async def user(_context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked.append(params.message)
            return types.ElicitResult(action="accept", content={"confirm": True})

        async with Client(build_server(app), elicitation_callback=user) as client:
            refused = await client.call_tool(
                "deploy", {"service": "web", "version": "1.0.0", "environment": "production"}
            )
        assert refused.is_error and "staging-prerequisite" in text(refused)
        assert asked == [], "nobody is asked to confirm a deploy its checklist refuses"

        app.ledger().create(
            service="web", version="1.0.0", environment="staging", strategy="rolling", status=Status.SUCCEEDED
        )
        passed = items(await preflight(app, environment="production"))["staging-prerequisite"]
        assert passed["status"] == "passed" and "succeeded in staging" in passed["evidence"]
    finally:
        app.close()


async def test_enterprise_items_approval_window_rollback_tested_and_tests(project: Path, tmp_path: Path) -> None:
    runs = tmp_path / "test-runs.txt"  # outside the project, so running the tests does not dirty the tree
    ok = json.dumps([sys.executable, "-c", f"open({str(runs)!r}, 'a').write('run\\n')"])
    head = f'mode = "brownfield-enterprise"\n[policy]\non_call = "alice"\n{ALL_WEEK}'
    app = load(project, service_config(head=head, extra=f"test_command = {ok}\n"))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "deploy.toml")
    git(project, "commit", "-q", "-m", "release")
    git(project, "tag", "v1.0.0")
    try:
        ledger = app.ledger()
        ledger.create(
            service="web", version="1.0.0", environment="staging", strategy="rolling", status=Status.SUCCEEDED
        )
        first = await preflight(app, environment="production")
        found = items(first)
        assert set(first["required_failures"]) == {"change-approval", "rollback-tested"}, first["summary"]
        assert "deploy-mcp approve CHANGE-ID --service web --environment production" in found["change-approval"]["fix"]
        assert found["deploy-window"]["status"] == "passed" and found["deploy-window"]["required"]
        assert found["on-call"]["status"] == "passed" and "alice" in found["on-call"]["evidence"]
        assert found["tests"]["status"] == "passed" and found["tests"]["required"]
        assert found["git-clean"]["status"] == "passed" and found["git-commit"]["status"] == "passed"

        approve(app, "CHG-7", "web", "production", "carol")
        rehearsal = ledger.create(
            service="web", version="0.9.0", environment="staging", strategy="rolling", status=Status.SUCCEEDED
        )
        ledger.create(
            service="web",
            version="0.9.0",
            environment="staging",
            strategy="rolling",
            status=Status.SUCCEEDED,
            rollback_of=rehearsal.id,
        )
        ready = await preflight(app, environment="production", change_id="CHG-7")
        assert ready["passed"] is True, ready["summary"]
        assert "approved by carol" in items(ready)["change-approval"]["evidence"]
        assert items(ready)["rollback-tested"]["status"] == "passed"
        assert "recorded" in items(ready)["tests"]["evidence"]
        assert runs.read_text().count("run") == 1, "a passing run on a clean commit is recorded, not repeated"
    finally:
        app.close()

    failing = json.dumps([sys.executable, "-c", "print('3 failed, 12 passed'); raise SystemExit(1)"])
    head = 'mode = "brownfield-enterprise"\n[[policy.deploy_windows]]\ndays = []\n'
    app = load(project, service_config(head=head, extra=f"test_command = {failing}\n"))
    try:
        blocked = await preflight(app, environment="production", change_id="CHG-7")
    finally:
        app.close()
    found = items(blocked)
    assert found["tests"]["status"] == "failed" and "exit code 1" in found["tests"]["evidence"]
    assert "3 failed, 12 passed" in found["tests"]["evidence"]
    assert found["deploy-window"]["status"] == "failed"
    assert found["on-call"]["status"] == "failed" and "policy.on_call" in found["on-call"]["fix"]
    assert found["git-clean"]["status"] == "failed" and "deploy.toml" in found["git-clean"]["evidence"]


async def test_brownfield_polish_requires_a_test_command(project: Path) -> None:
    app = load(project, service_config(head='mode = "brownfield-polish"\n'))
    try:
        report = await preflight(app, environment="staging")
    finally:
        app.close()
    tests = items(report)["tests"]
    assert tests["status"] == "failed" and tests["required"] is True
    assert "services.web.test_command" in tests["fix"]
    assert report["required_failures"] == ["tests"]
    assert items(report)["change-approval"]["status"] == "not_applicable"


# -- migrations: only the release's new files are judged ------------------------------------------------------------

MIGRATIONS = {
    "001_users.up.sql": "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    "001_users.down.sql": "DROP TABLE users;\n",
    "002_drop_email.up.sql": "ALTER TABLE users DROP COLUMN email;\n",
    "002_drop_email.down.sql": "ALTER TABLE users ADD COLUMN email text;\n",
}
FIRST = ["migrations/001_users.up.sql", "migrations/001_users.down.sql"]
DROP = "migrations/002_drop_email.up.sql"


def shipped(app: App, version: str, files: list[str]) -> None:
    """A succeeded deployment of web in staging that carried ``files``, as the runner records one."""
    from deploy_mcp.core.records import Changes
    from deploy_mcp.migrations.release import migration_entries

    app.ledger().create(
        service="web",
        version=version,
        environment="staging",
        strategy="rolling",
        status=Status.SUCCEEDED,
        changes=Changes(migrations=migration_entries(files, app.project.root)),
    )


async def test_an_undeclared_irreversible_new_migration_blocks_brownfield_and_history_does_not(project: Path) -> None:
    folder = project / "migrations"
    folder.mkdir()
    for name, sql in MIGRATIONS.items():
        (folder / name).write_text(sql, encoding="utf-8")
    polish = 'mode = "brownfield-polish"\n'
    app = load(project, service_config(head=polish, extra='migrations = "migrations"\n'))
    try:
        shipped(app, "1.0.0", FIRST)  # 002 is what the next release brings
        undeclared = items(await preflight(app, environment="staging", version="1.1.0"))["migrations"]
    finally:
        app.close()
    assert undeclared["status"] == "failed" and undeclared["required"] is True
    assert "2 of 4 file(s) new since" in undeclared["evidence"] and DROP in undeclared["evidence"]
    assert "drops column users.email" in undeclared["evidence"]
    assert "001_users" not in undeclared["evidence"].split("new since")[1]  # its destructive down step is history
    assert 'migrations_irreversible = true under [services.web.versions."1.1.0"]' in undeclared["fix"]
    assert "expand / contract" in undeclared["fix"]

    declared = '[services.web.versions."1.1.0"]\nmigrations_irreversible = true\n'
    app = load(project, service_config(head=polish, extra='migrations = "migrations"\n') + declared)
    try:
        report = await preflight(app, environment="staging", version="1.1.0")
        accepted = items(report)["migrations"]
        shipped(app, "1.1.0", [*FIRST, DROP, "migrations/002_drop_email.down.sql"])
        later = items(await preflight(app, environment="staging", version="1.2.0"))["migrations"]
    finally:
        app.close()
    assert "migrations" not in report["required_failures"] and accepted["status"] != "failed"
    assert "irreversible, declared" in accepted["evidence"]
    assert later["status"] == "passed" and "no migration files new since" in later["evidence"]
    assert "irreversible" not in later["evidence"]

    app = load(project, service_config(extra='migrations = "migrations"\n'))  # greenfield: a warning
    try:
        shipped(app, "1.0.1", FIRST)  # newer than 1.1.0's record: 002 is new again
        greenfield = items(await preflight(app, environment="staging", version="1.3.0"))["migrations"]
    finally:
        app.close()
    assert greenfield["status"] == "warning" and greenfield["required"] is False and DROP in greenfield["evidence"]


async def test_unknown_names_and_a_broken_config_are_clear(project: Path) -> None:
    app = load(project, service_config())
    try:
        async with Client(build_server(app)) as client:
            unknown = await client.call_tool("preflight", {"service": "api", "version": "1", "environment": "staging"})
        assert unknown.is_error and "service 'api' is not in deploy.toml; known services: web" in text(unknown)
    finally:
        app.close()
    broken = load(project, service_config(extra="test_command = 3\n"))
    try:
        report = await preflight(broken, environment="staging")
    finally:
        broken.close()
    assert report["passed"] is False and report["required_failures"] == ["config"]
    assert "test_command" in items(report)["config"]["evidence"]


@pytest.mark.parametrize(
    ("image", "url"),
    [
        ("127.0.0.1:5000/web:1.2", "http://127.0.0.1:5000/v2/web/manifests/1.2"),
        ("localhost:5000/team/web:1.2", "http://localhost:5000/v2/team/web/manifests/1.2"),
        ("registry.example.com/team/web:1.2", "https://registry.example.com/v2/team/web/manifests/1.2"),
        ("nginx:1.27", "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"),
        ("ghcr.io/acme/web@sha256:" + "a" * 64, "https://ghcr.io/v2/acme/web/manifests/sha256:" + "a" * 64),
    ],
)
def test_image_references_name_the_manifest_docker_would_pull(image: str, url: str) -> None:
    from deploy_mcp.preflight.registry import parse_image_ref

    assert parse_image_ref(image).manifest_url() == url


def test_a_malformed_image_reference_is_a_failed_lookup_not_a_crash() -> None:
    from deploy_mcp.preflight.registry import find_manifest

    lookup = find_manifest("Registry.example.com/Web:1.0 beta")
    assert lookup.exists is None and "is not an image reference" in lookup.detail

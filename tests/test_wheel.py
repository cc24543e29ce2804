"""The package as a user installs it: the wheel built from the sdist, in a fresh virtualenv, run from elsewhere.

One build and one install are shared by the module (about a minute on a quiet machine, most of it pip resolving
and installing the dependencies, from pip's cache when it is warm). Every command runs with the temporary folder as
working directory and a PATH holding only that virtualenv and the system, so nothing of the repository (its
sources, its examples, its own .venv and the tools in it) can stand in for what the wheel lacks. The wheel is
installed without extras, as `pip install deploy-mcp` does: the features that need one must name the command.
`uvx deploy-mcp`, the other way MCP clients start a server, is run from the same wheel in uv's own environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_component
from test_demo import processes_under

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
LOCAL_INSPECTOR = REPO / ".tools" / "node_modules" / ".bin" / "mcp-inspector"


@dataclass
class Installed:
    """A fresh virtualenv with the built wheel installed, and a clean place to run it from."""

    venv: Path
    home: Path  # working directory of every command: a temporary folder, far from the repository
    dist: Path
    env: dict[str, str]

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "deploy-mcp"

    @property
    def uvx(self) -> list[str]:
        """`uvx deploy-mcp` as an MCP client configuration runs it, from the built wheel instead of PyPI."""
        (wheel,) = self.dist.glob("*.whl")
        uvx = Path(sys.executable).parent / "uvx"
        python = self.venv / "bin" / "python"  # an interpreter to build uv's own environment from, never a download
        return [str(uvx), "--python", str(python), "--from", str(wheel), "deploy-mcp"]

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.command), *args],
            cwd=cwd or self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, **options)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist, venv, home = root / "dist", root / "venv", root / "home"
    home.mkdir()
    started = time.monotonic()
    # sdist first, then the wheel built from the unpacked sdist (build's default): a file missing from the sdist
    # is missing from the wheel too, so both are checked by what follows.
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], timeout=600)
    built = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    (wheel,) = dist.glob("*.whl")
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "DEPLOY_MCP"))
    }
    node = shutil.which("node")  # the Inspector's interpreter, wherever Node.js is installed
    system = [str(Path(node).parent)] if node else []
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), *system, "/usr/bin", "/bin"]),
        COLUMNS="80",
        TMPDIR=str(home),
        UV_PYTHON_DOWNLOADS="never",
    )
    # with its dependencies, as a user gets them (pip's cache makes a repeat quick); no extras
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        cwd=home,
        env=env,
        timeout=600,
    )
    print(f"build {built - started:.0f} s, venv and install {time.monotonic() - built:.0f} s")
    return Installed(venv, home, dist, env)


def test_the_sdist_and_wheel_pass_twine_check(installed: Installed) -> None:
    artifacts = sorted(installed.dist.iterdir())
    assert sorted(path.suffix for path in artifacts) == [".gz", ".whl"], artifacts
    assert all(VERSION in path.name for path in artifacts)
    result = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, artifacts)])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_the_example_project_and_the_data_files(installed: Installed) -> None:
    (wheel,) = installed.dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "deploy_mcp/examples/deploy.toml",
        "deploy_mcp/examples/hello/server.py",
        "deploy_mcp/examples/hello/__main__.py",
        "deploy_mcp/server/tool_schemas.json",
    ):
        assert needed in names
    assert any(name.startswith("deploy_mcp/templates/deploy_md/") for name in names)
    assert any(name.startswith("deploy_mcp/resources/checklists/") for name in names)
    assert not any(name.startswith(("tests/", "examples/", "docs/")) for name in names), "only the package ships"
    assert f"deploy_mcp-{VERSION}.dist-info/licenses/LICENSE" in names
    (sdist,) = installed.dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert f"deploy_mcp-{VERSION}/deploy_mcp/examples/deploy.toml" in members
    metadata = zipfile.ZipFile(wheel).read(f"deploy_mcp-{VERSION}.dist-info/METADATA").decode()
    assert "mcp-name: io.github." in metadata, "the registry verifies ownership from the PyPI description"


def test_nothing_from_the_repository_is_imported(installed: Installed) -> None:
    where = _run(
        [str(installed.venv / "bin" / "python"), "-c", "import deploy_mcp, sys; print(deploy_mcp.__file__)"],
        cwd=installed.home,
        env=installed.env,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where
    assert not Path(where).is_relative_to(REPO)


def test_version(installed: Installed) -> None:
    result = installed.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"deploy-mcp {VERSION}"


def test_init_writes_a_starter_that_loads(installed: Installed) -> None:
    project = installed.home / "starter"
    project.mkdir()
    result = installed.run("init", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "deploy.toml").is_file()
    history = installed.run("history", cwd=project)  # reads the starter: a broken one would say so here
    assert history.returncode == 0, history.stdout + history.stderr
    assert "Traceback" not in history.stderr


def test_the_short_demo_ships_the_packaged_example(installed: Installed) -> None:
    workspace = installed.home / "demo"
    workspace.mkdir()
    env = {**installed.env, "TMPDIR": str(workspace)}
    try:
        result = subprocess.run(
            [str(installed.command), "demo", "--short"],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        deadline = time.monotonic() + 10
        while (left := processes_under(workspace)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0, text[-3000:] + result.stderr[-2000:]
    assert "demo stopped" not in text and "Traceback" not in text + result.stderr
    assert "connected to deploy-mcp over stdio" in text
    assert ": succeeded" in text and "wrote " in text and "DEPLOY.md" in text
    assert left == [], f"processes outlived the demo: {left}"


def test_uvx_runs_the_wheel_in_an_environment_of_its_own(installed: Installed) -> None:
    result = subprocess.run(
        [*installed.uvx, "--version"],
        cwd=installed.home,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"deploy-mcp {VERSION}"


def inspector(installed: Installed, project: Path, *method: str, server: list[str] | None = None) -> dict:
    if LOCAL_INSPECTOR.exists():
        command = [str(LOCAL_INSPECTOR)]
    else:
        require_component("node", shutil.which("npx") is not None, "install Node.js; scripts/setup.sh caches the CLI")
        command = ["npx", "-y", "@modelcontextprotocol/inspector@0.15"]
    server = [*(server or [str(installed.command)]), "serve"]
    config = ["-e", f"DEPLOY_MCP_CONFIG={project / 'deploy.toml'}"]
    result = subprocess.run(
        [*command, "--cli", *config, *server, *method],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=project,
        env=installed.env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


EXTRAS_PROJECT = """\
mode = "greenfield"

[services.web]
target = "kubernetes"
command = ["{python}", "-m", "http.server", "{port}"]
health = "/"

[services.web.environments.production]
strategy = "rolling"
port = 8080

[services.api]
target = "ecs"
command = ["{python}", "-m", "http.server", "{port}"]
health = "/"

[services.api.environments.production]
strategy = "rolling"
port = 8081
"""


@pytest.fixture(scope="module")
def extras_project(installed: Installed) -> Path:
    project = installed.home / "extras"
    (project / "migrations").mkdir(parents=True)
    (project / "deploy.toml").write_text(EXTRAS_PROJECT)
    (project / "migrations" / "0001_orders.up.sql").write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    (project / "migrations" / "0001_orders.down.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    return project


@pytest.mark.parametrize("how", ["pip", "uvx"])
def test_the_installed_server_lists_its_tools_to_the_inspector(
    installed: Installed, extras_project: Path, how: str
) -> None:
    server = installed.uvx if how == "uvx" else None
    listed = inspector(installed, extras_project, "--method", "tools/list", server=server)["tools"]
    assert {"plan_deployment", "deploy", "lint_migrations", "deployment_history"} <= {tool["name"] for tool in listed}


def test_the_installed_server_reads_a_checklist_to_the_inspector(installed: Installed, extras_project: Path) -> None:
    body = inspector(installed, extras_project, "--method", "resources/read", "--uri", "deploy://checklists/rollback")
    assert body["contents"][0]["text"].startswith("# ")


@pytest.mark.parametrize(("service", "extra"), [("web", "kubernetes"), ("api", "ecs")])
def test_a_target_without_its_extra_names_the_pip_command(
    installed: Installed, extras_project: Path, service: str, extra: str
) -> None:
    arguments = [f"service={service}", "version=2.0.0", "environment=production"]
    body = inspector(
        installed,
        extras_project,
        "--method",
        "tools/call",
        "--tool-name",
        "plan_deployment",
        *(part for argument in arguments for part in ("--tool-arg", argument)),
    )
    assert body["isError"] is True
    text = body["content"][0]["text"]
    assert f"pip install 'deploy-mcp[{extra}]'" in text, text
    assert f"services.{service}.target" in text and "Traceback" not in text


def test_migrations_without_their_extra_name_the_pip_command(installed: Installed, extras_project: Path) -> None:
    """Without squawk the lint still runs deploy-mcp's own rules, and says what would add squawk's."""
    body = inspector(
        installed,
        extras_project,
        "--method",
        "tools/call",
        "--tool-name",
        "lint_migrations",
        "--tool-arg",
        "path=migrations",
    )
    assert body.get("isError") is not True, body
    assert "pip install 'deploy-mcp[migrations]'" in json.dumps(body["structuredContent"])

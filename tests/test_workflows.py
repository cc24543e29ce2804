"""The GitHub workflows a maintainer pushes as they are: valid for GitHub (check-jsonschema's built-in workflow
schema, offline) and doing what the project promises: CI runs .ci/run, the docs go to Pages from main, a tag
releases to PyPI by trusted publishing and then to the MCP Registry.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


def workflow(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return loaded


def steps(job: dict[str, Any]) -> str:
    """Every `uses` and `run` of a job, one per line, to look for what it does."""
    return "\n".join(step.get("uses") or step.get("run", "") for step in job.get("steps", []))


def test_every_workflow_is_valid_for_github() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {path.name for path in files} == {"ci.yml", "docs.yml", "release.yml"}
    result = subprocess.run([*CHECK, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "replace", "by"),
    [
        ("a job without runs-on", "    runs-on: ubuntu-latest\n    container:", "    container:"),
        ("a misspelt key", "timeout-minutes", "timeout_minutes"),
        ("an unknown event", "  pull_request:\n", "  pull-request:\n"),
    ],
)
def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path, mistake: str, replace: str, by: str) -> None:
    text = (WORKFLOWS / "ci.yml").read_text()
    assert replace in text, mistake
    broken = tmp_path / "ci.yml"
    broken.write_text(text.replace(replace, by, 1))
    result = subprocess.run([*CHECK, str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, f"{mistake} passed the check"


def test_ci_runs_the_same_script_as_every_other_ci() -> None:
    ci = workflow("ci.yml")
    assert set(ci["on"]) >= {"push", "pull_request", "workflow_call"}
    (job,) = ci["jobs"].values()
    assert "bash .ci/run" in steps(job).splitlines()
    assert job["timeout-minutes"] <= 30


def test_the_docs_go_to_pages_on_every_push_to_main() -> None:
    docs = workflow("docs.yml")
    assert docs["on"]["push"]["branches"] == ["main"]
    build, deploy = docs["jobs"]["build"], docs["jobs"]["deploy"]
    assert "python scripts/gen_reference.py --check" in steps(build)
    assert "npm run docs:build" in steps(build)
    assert any(step.get("env", {}).get("DOCS_BASE") for step in build["steps"]), "a project page lives under /NAME/"
    assert "actions/upload-pages-artifact" in steps(build)
    assert "docs/.vitepress/dist" in str(build["steps"])
    assert deploy["needs"] == "build" and "actions/deploy-pages" in steps(deploy)
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_a_tag_releases_to_pypi_by_trusted_publishing_then_to_the_registry() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["build"]["needs"] == "test"
    build = steps(jobs["build"])
    assert "python -m build" in build and "twine check --strict dist/*" in build
    assert "GITHUB_REF_NAME" in build and "server.json" in build  # the tag must be the version everywhere
    pypi = jobs["pypi"]
    assert pypi["needs"] == "build" and pypi["environment"]["name"] == "pypi"
    assert pypi["permissions"] == {"id-token": "write"}
    assert "pypa/gh-action-pypi-publish" in steps(pypi)
    assert "password" not in str(pypi), "trusted publishing: no token"
    registry = jobs["registry"]
    assert registry["needs"] == "pypi"  # the registry verifies the package on PyPI
    assert registry["permissions"]["id-token"] == "write"
    commands = steps(registry)
    assert "mcp-publisher login github-oidc" in commands and "mcp-publisher publish" in commands
    assert release["permissions"] == {"contents": "read"}, "jobs ask for more only where they need it"

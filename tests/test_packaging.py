"""One version and one name everywhere a user or the MCP Registry reads them.

server.json is checked offline against the registry's server.json schema, vendored in tests/data/server.schema.json:
the 2025-12-11 schema (https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json, generated from
the modelcontextprotocol/registry repository's openapi.yaml), the one server.json's `$schema` names. The registry's
publisher refuses a schema it has deprecated, so move to a newer one by replacing both together.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "tests" / "data" / "server.schema.json").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def server_json() -> dict[str, Any]:
    return json.loads((REPO / "server.json").read_text())


def schema_errors(entry: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(entry)]


def test_server_json_follows_the_registry_schema() -> None:
    entry = server_json()
    assert entry["$schema"] == SCHEMA["$id"], "server.json names the schema it is checked against"
    assert schema_errors(entry) == []


def test_the_schema_check_rejects_what_the_registry_rejects() -> None:
    """The vendored schema is live: the mistakes a publisher makes fail here before the registry refuses them."""
    entry = server_json()
    too_long = {**entry, "description": "x" * 101}
    latest = copy.deepcopy(entry)
    latest["packages"][0]["version"] = "latest"
    unknown_transport = copy.deepcopy(entry)
    unknown_transport["packages"][0]["transport"] = {"type": "websocket"}
    bad_name = {**entry, "name": "deploy-mcp"}  # no namespace
    for broken in (too_long, latest, unknown_transport, bad_name):
        assert schema_errors(broken), broken


def test_server_json_installs_the_pypi_package_over_stdio_with_the_variables_a_client_sets() -> None:
    entry = server_json()
    (package,) = entry["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == PYPROJECT["project"]["name"]
    assert package["transport"] == {"type": "stdio"}
    assert [argument["value"] for argument in package["packageArguments"]] == ["serve"]
    variables = {variable["name"]: variable for variable in package["environmentVariables"]}
    assert set(variables) == {"DEPLOY_MCP_CONFIG", "DEPLOY_MCP_TOKEN"}
    assert variables["DEPLOY_MCP_CONFIG"]["format"] == "filepath"
    assert variables["DEPLOY_MCP_TOKEN"]["isSecret"] is True
    assert not variables["DEPLOY_MCP_CONFIG"].get("isSecret", False)
    assert not any(variable.get("isRequired") for variable in variables.values()), "serve runs with neither"


def test_the_readme_carries_the_name_the_registry_verifies_on_pypi() -> None:
    """The registry reads `mcp-name: NAME` in the package's PyPI description, which is the README."""
    assert PYPROJECT["project"]["readme"] == "README.md"
    names = re.findall(r"mcp-name: (\S+)", (REPO / "README.md").read_text())
    assert names == [server_json()["name"]]


def test_the_package_declares_where_its_source_and_docs_are() -> None:
    entry = server_json()
    urls = PYPROJECT["project"]["urls"]
    assert urls["Repository"] == entry["repository"]["url"]
    assert urls["Documentation"] == entry["websiteUrl"]


def documented_versions() -> dict[str, set[str]]:
    """Every place outside pyproject.toml that states deploy-mcp's own version."""
    found: dict[str, set[str]] = {}
    pages = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md"]
    for page in pages:
        if "node_modules" in page.parts or page.name == "changelog.md":
            continue
        stated = set(re.findall(r"deploy-mcp[ :](\d+\.\d+\.\d+)\b", page.read_text()))
        if stated:
            found[str(page.relative_to(REPO))] = stated
    changelog = (REPO / "docs" / "changelog.md").read_text()
    found["docs/changelog.md (latest entry)"] = {re.search(r"^## (\S+)", changelog, re.MULTILINE).group(1)}
    for manifest in (REPO / "deploy").rglob("*.yaml"):
        tags = set(re.findall(r"image: \S+/deploy-mcp:(\S+)", manifest.read_text()))
        if tags:
            found[str(manifest.relative_to(REPO))] = tags
    return found


def test_one_version_in_pyproject_server_json_the_installed_package_and_the_docs() -> None:
    entry = server_json()
    assert entry["version"] == VERSION
    assert entry["packages"][0]["version"] == VERSION
    assert installed_version("deploy-mcp") == VERSION, "reinstall (pip install -e .) after changing the version"
    stated = documented_versions()
    assert "docs/reference/tools.md" in stated, stated  # the check reads the docs, not nothing
    wrong = {place: versions for place, versions in stated.items() if versions != {VERSION}}
    assert wrong == {}, f"pyproject.toml says {VERSION}"


@pytest.mark.anyio
async def test_the_server_reports_the_package_version_to_mcp_clients() -> None:
    import deploy_mcp
    from deploy_mcp.app import App
    from deploy_mcp.server.app import build_server

    assert deploy_mcp.__version__ == VERSION
    async with Client(build_server(App.load(None, start=Path("/")))) as client:
        assert client.server_info.name == "deploy-mcp"
        assert client.server_info.version == VERSION
    source = (REPO / "deploy_mcp" / "__init__.py").read_text()
    assert VERSION not in source, "the runtime version comes from the package metadata, not a second literal"

"""The knowledge an agent reads: checklists, references and prompts.

These are what an agent is told to do, so they must exist, be readable markdown, name only tools and resources
that exist, and agree with the catalog the server publishes. The PromQL and alert rules they teach must parse.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from conftest import require_component

from deploy_mcp.errors import UserError
from deploy_mcp.resources import catalog, prompts
from deploy_mcp.server.toolset import CONTRACT_TOOLS

FIXED_URIS = {"deploy://capabilities", "deploy://config", "deploy://deployments"}
KNOWN_URIS = (
    FIXED_URIS
    | {f"deploy://checklists/{name}" for name in catalog.CHECKLISTS}
    | {f"deploy://references/{name}" for name in catalog.REFERENCES}
)

ALL_DOCUMENTS = [("checklists", name) for name in catalog.CHECKLISTS] + [
    ("references", name) for name in catalog.REFERENCES
]
_CALL = re.compile(r"\b([a-z][a-z_]*)\(")
_URI = re.compile(r"deploy://[a-z-]+(?:/[a-z-]+)?")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^>]*)?>")
_FENCED_BLOCK = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)


def packaged_names(kind: str) -> set[str]:
    folder = files("deploy_mcp.resources").joinpath(kind)
    return {Path(entry.name).stem for entry in folder.iterdir() if entry.name.endswith(".md")}


def calls_in(text: str) -> set[str]:
    """Names written as calls (`validate(`), i.e. the tools a text tells an agent to use."""
    return set(_CALL.findall(text))


@pytest.mark.parametrize("kind", ["checklists", "references"])
def test_catalog_lists_exactly_the_packaged_files(kind: str) -> None:
    listed = set(catalog.CHECKLISTS if kind == "checklists" else catalog.REFERENCES)
    assert listed == packaged_names(kind)


def test_catalog_has_every_resource_the_contract_names() -> None:
    assert set(catalog.CHECKLISTS) == {"pre-deployment", "post-deployment", "rollback", "enterprise-change"}
    assert set(catalog.REFERENCES) == {
        "deployment-strategies",
        "deployment-commands",
        "migration-safety",
        "validation-checklist",
        "rollback-procedures",
        "monitoring-setup",
    }
    for description in [*catalog.CHECKLISTS.values(), *catalog.REFERENCES.values()]:
        assert description.strip() and "\n" not in description


@pytest.mark.parametrize(("kind", "name"), ALL_DOCUMENTS)
def test_document_is_markdown_with_one_top_heading(kind: str, name: str) -> None:
    text = catalog.read_text(kind, name)
    assert text.count("```") % 2 == 0, f"{kind}/{name} has an unclosed code fence"
    prose = _FENCED_BLOCK.sub("", text)  # a '# comment' inside a shell block is not a heading
    lines = prose.splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 3, f"{kind}/{name} must open with a '# Title'"
    assert sum(line.startswith("# ") for line in lines) == 1, f"{kind}/{name} has more than one top heading"
    assert any(line.startswith("## ") for line in lines), f"{kind}/{name} has no sections"
    assert not _HTML_TAG.search(prose), f"{kind}/{name} contains HTML"


@pytest.mark.parametrize("name", list(catalog.CHECKLISTS))
def test_checklist_is_a_task_list_grouped_by_phase(name: str) -> None:
    text = catalog.read_text("checklists", name)
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert len(sections) >= 3, "a checklist groups its items into phases"
    for section in sections:
        assert "- [ ] " in section, f"phase {section.splitlines()[0]!r} of {name} has no checkable item"


def test_pre_deployment_marks_what_preflight_checks() -> None:
    text = catalog.read_text("checklists", "pre-deployment")
    marked = [line for line in text.splitlines() if line.startswith("- [ ] ") and "(preflight checks this" in line]
    assert len(marked) >= 5


@pytest.mark.parametrize(("kind", "name"), ALL_DOCUMENTS)
def test_documents_point_only_at_real_resources(kind: str, name: str) -> None:
    text = catalog.read_text(kind, name)
    assert set(_URI.findall(text)) <= KNOWN_URIS


def test_references_carry_the_numbers_agents_act_on() -> None:
    strategies = catalog.read_text("references", "deployment-strategies")
    for fact in ["5% -> 25% -> 50% -> 100%", "1%", "15 min", "2 h", "30 s", "consecutive_error_limit", "Inconclusive"]:
        assert fact in strategies
    monitoring = catalog.read_text("references", "monitoring-setup")
    for fact in ["HighErrorRate", "> 0.05", "for: 2m", "HighLatency", "> 2", "for: 5m", "90 days", "1 year"]:
        assert fact in monitoring
    rollback = catalog.read_text("references", "rollback-procedures")
    for fact in ["about 30 s", "about 3 min", "about 10 s", "fix forward", "30 minutes"]:
        assert fact in rollback
    validation = catalog.read_text("references", "validation-checklist")
    assert '"ok"' in validation and '"healthy"' in validation


@pytest.mark.parametrize("kind", ["checklists", "references"])
def test_unknown_name_is_a_clear_error_naming_the_allowed_ones(kind: str) -> None:
    with pytest.raises(KeyError) as caught:
        catalog.read_text(kind, "pre-deploy")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "'pre-deploy'" in message
    allowed = catalog.CHECKLISTS if kind == "checklists" else catalog.REFERENCES
    assert all(name in message for name in allowed)
    assert isinstance(caught.value, UserError), "the MCP face shows UserError messages as they are"


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="checklists, references"):
        catalog.read_text("runbooks", "rollback")  # type: ignore[arg-type]


SHIP_TOOLS = CONTRACT_TOOLS
HOTFIX_TOOLS = CONTRACT_TOOLS - {"generate_monitoring"}
ROLLBACK_TOOLS = {"deployment_history", "deployment_status", "abort", "validate", "rollback", "generate_deploy_md"}


@pytest.mark.parametrize(
    ("text", "tools", "arguments"),
    [
        (prompts.ship("checkout", "staging", "2.7.1"), SHIP_TOOLS, ["checkout", "staging", "2.7.1"]),
        (prompts.hotfix("checkout", "2.7.2", "EU cards declined"), HOTFIX_TOOLS, ["checkout", "2.7.2", "EU cards"]),
        (prompts.rollback("checkout", "eu-prod", "5xx at 7%"), ROLLBACK_TOOLS, ["checkout", "eu-prod", "5xx at 7%"]),
    ],
    ids=["ship", "hotfix", "rollback"],
)
def test_prompt_renders_its_arguments_and_names_real_tools(text: str, tools: set[str], arguments: list[str]) -> None:
    for argument in arguments:
        assert argument in text
    named = calls_in(text)
    assert tools <= named, f"missing tool calls: {sorted(tools - named)}"
    assert named <= CONTRACT_TOOLS, f"not deploy-mcp tools: {sorted(named - CONTRACT_TOOLS)}"
    assert set(_URI.findall(text)) <= KNOWN_URIS
    assert "{" + "service" + "}" not in text and "{target}" not in text, "a placeholder was left unformatted"


def test_ship_uses_every_resource_and_keeps_consent_with_the_user() -> None:
    text = prompts.ship("web")
    for uri in ["deploy://capabilities", "deploy://config", "deploy://deployments"]:
        assert uri in text
    assert "deploy://checklists/pre-deployment" in text and "deploy://checklists/post-deployment" in text
    assert "Never answer for them" in text and "deploy-mcp approve" in text
    assert "fix forward" in text
    assert "No version was given" in text and 'version="VERSION"' in text
    assert "No version was given" not in prompts.ship("web", version="1.0.0")


def test_hotfix_never_skips_validation() -> None:
    text = prompts.hotfix("web", "1.0.1", "login loop")
    assert "blue-green" in text and "canary" in text
    assert "Health and smoke tests" in text and "must pass" in text
    assert "login loop" in text


def test_rollback_prompt_targets_the_last_validated_deployment() -> None:
    text = prompts.rollback("web")
    assert "passed validation" in text
    assert "No reason was given" in text
    assert "roll_forward_only" in text
    assert "production" in text and "deploy-mcp approve" in text


def _fenced(language: str) -> list[str]:
    blocks: list[str] = []
    for kind, name in ALL_DOCUMENTS:
        blocks += re.findall(rf"```{language}\n(.*?)```", catalog.read_text(kind, name), flags=re.DOTALL)
    return blocks


def test_promql_and_alert_rules_parse(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require_component("promtool", promtool is not None, "install the Debian package prometheus")
    alert_files = [block for block in _fenced("yaml") if "alert:" in block]
    assert alert_files, "monitoring-setup teaches alert rules"
    queries = [" ".join(block.split()) for block in _fenced("promql")]
    assert len(queries) >= 5
    # Every PromQL example becomes a recording rule so promtool parses it.
    recorded = "groups:\n  - name: examples\n    rules:\n" + "".join(
        f"      - record: example:query{i}\n        expr: '{q}'\n" for i, q in enumerate(queries)
    )
    paths = []
    for i, body in enumerate([*alert_files, recorded]):
        path = tmp_path / f"rules{i}.yml"
        path.write_text(body, encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run([promtool, "check", "rules", *paths], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

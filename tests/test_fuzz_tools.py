"""Every tool's arguments fuzzed with hypothesis through a real MCP client: an agent can send anything.

Wrong types, missing and extra keys, huge and unicode strings, negative numbers, path-like ids, unknown
services, environments, versions and deployments. Whatever arrives, the answer is a result or a clear error
(naming a field or saying what to do), never a traceback or the SDK's bare "Error executing tool X" that stands
for a crash, and a refused call leaves the ledger exactly as it was.

The project is built so that nothing can legitimately change: the platform runs nothing, production deploys and
rollbacks need the user's confirmation and this client cannot ask, staging deploys get versions that are not
versions, and the ledger holds only finished deployments (so there is nothing to resume or abort). Only
`validate` writes, by design: it notes its verdict on the latest deployment it judged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_fixtures import free_port
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.core.plans import VERSION
from deploy_mcp.core.records import Status, Validation
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.server.app import build_server
from deploy_mcp.server.toolset import TOOLS

HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
TOOL_NAMES = [spec.name for spec in TOOLS]
EXAMPLES_PER_TOOL = int(os.environ.get("FUZZ_EXAMPLES", "15"))  # per tool; about 200 calls in all

WHAT_TO_DO = re.compile(
    r"\b(give|use|add|run|call|fix|check|choose|omit|pass|send|resume|abort|roll|wait|poll|known|lists?|"
    r"should|must|needs?|expected|required|valid|not (a|in|allowed)|no deployment|nothing)\b",
    re.IGNORECASE,
)


def config(production_port: int, staging_port: int) -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""\
[services.hello]
command = {command}
replicas = 2
health = "/health"

[services.hello.environments.staging]
strategy = "rolling"
port = {staging_port}

[services.hello.environments.production]
strategy = "canary"
steps = [10, 50, 100]
port = {production_port}
requires = ["staging"]
"""


@dataclass
class Session:
    """One server and client for the whole module, driven from hypothesis' synchronous examples."""

    portal: BlockingPortal
    client: Client
    ledger: SqliteLedger
    schemas: dict[str, dict[str, Any]]
    ids: list[str]
    crashes: list[logging.LogRecord] = field(default_factory=list)

    def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)


class _Crashes(logging.Handler):
    """The server logs a crash (an exception other than a deliberate tool error) at ERROR with its traceback."""

    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "deploy.toml").write_text(config(free_port(), free_port()), encoding="utf-8")
    app = App.load(folder / "deploy.toml")
    seeded = app.ledger()
    ids = []
    for version, status in (("1.0.0", Status.SUCCEEDED), ("1.1.0", Status.ROLLED_BACK), ("1.2.0", Status.FAILED)):
        record = seeded.create(
            service="hello",
            version=version,
            environment="production",
            strategy="canary",
            status=status,
            validation=Validation(passed=status is Status.SUCCEEDED),
        )
        seeded.append_event(record.id, "started", f"seeded {version}")
        ids.append(record.id)
    crashes: list[logging.LogRecord] = []
    handler = _Crashes(crashes)
    logging.getLogger().addHandler(handler)
    ledger = SqliteLedger(app.ledger_path)
    try:
        with (
            start_blocking_portal(backend="asyncio") as portal,
            portal.wrap_async_context_manager(Client(build_server(app))) as client,
        ):
            listed = portal.call(client.list_tools).tools
            schemas = {tool.name: tool.input_schema for tool in listed}
            yield Session(portal, client, ledger, schemas, ids, crashes)
    finally:
        logging.getLogger().removeHandler(handler)
        ledger.close()
        app.close()
    assert not any((folder / ".deploy" / "local").glob("*.json")), "a fuzzed call started something"


# -- what an agent might send ----------------------------------------------------------------------------------

HUGE = st.sampled_from(["x" * 100_000, "é" * 20_000, "1." * 5_000, "\u0000" * 64, "🚀" * 1_000])
ODD_TEXT = st.sampled_from(["", " ", "../x", "../../etc/passwd", "a/b", "null", "None", "\n", "1.0\r\nX-Evil: 1", "☃"])
ANYTHING = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
NUMBERS = (
    st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(min_value=-1e308, max_value=1e308, allow_nan=False)
    | st.sampled_from([0, -1, 0.5, 1, 50, 500, 600, 601, 2**63])
)
NONSENSE_VERSIONS = (ODD_TEXT | HUGE | st.text(max_size=40)).filter(lambda v: not VERSION.fullmatch(v))


def plausible(name: str, ids: list[str]) -> st.SearchStrategy[Any]:
    """Values of the right type, good and bad, for each argument name the tools use."""
    known_ids = st.sampled_from([*ids, "deploy-2026-01-01-999", "deploy-1999-12-31-001", "deploy-2026-01-01-1"])
    pools: dict[str, st.SearchStrategy[Any]] = {
        "service": st.sampled_from(["hello", "hello", "nope", "HELLO", "hello "]),
        "environment": st.sampled_from(["production", "staging", "prod", "Production", "staging\n"]),
        "version": st.sampled_from(["1.0.0", "2.0.0", "1.1.0", "v3", "0"]) | NONSENSE_VERSIONS,
        "deployment_id": known_ids | st.from_regex(r"deploy-\d{4}-\d{2}-\d{2}-\d{3,5}", fullmatch=True),
        "to": known_ids | st.sampled_from(["1.0.0", "1.1.0", "9.9.9"]) | NONSENSE_VERSIONS,
        "strategy": st.sampled_from(["canary", "rolling", "blue-green", "recreate", "feature-flag", "canery", ""]),
        "status": st.sampled_from([s.value for s in Status] + ["done", "SUCCEEDED"]),
        "reason": st.text(max_size=80) | st.sampled_from(["ok", "the canary returns 500s"]),
        "change_id": st.sampled_from(["CHG-1234", "", "CHG 1"]) | st.text(max_size=20),
        "path": st.sampled_from(["migrations", "DEPLOY.md", "docs/DEPLOY.md", "~", "~0", "/etc/passwd", "../x.md"])
        | st.sampled_from(["\x00.md", "x" * 300 + ".md", "a/" * 2000 + "DEPLOY.md"]),
        "wait_seconds": NUMBERS,
        "limit": NUMBERS,
    }
    return pools.get(name, st.text(max_size=20))


JUNK = ANYTHING | ODD_TEXT | HUGE | NUMBERS


@st.composite
def arguments_for(draw: st.DrawFn, tool: str, schema: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Arguments in one of four shapes, so that most calls get past argument validation to the checks behind it:
    all plausible; plausible but for one junk value; plausible but for a missing required key; anything at all."""
    properties = list(schema.get("properties", {}))
    required = [name for name in properties if name in schema.get("required", [])]
    shape = draw(st.sampled_from(["plausible", "plausible", "one junk value", "one key missing", "anything"]))
    arguments: dict[str, Any] = {}
    for name in properties:
        if name in required or draw(st.booleans()):
            arguments[name] = draw(JUNK if shape == "anything" else plausible(name, ids))
    if shape == "one junk value" and properties:
        arguments[draw(st.sampled_from(properties))] = draw(JUNK)
    if shape == "one key missing" and required:
        del arguments[draw(st.sampled_from(required))]
    if shape == "anything":
        for name in required:
            if draw(st.integers(0, 4)) == 0:
                del arguments[name]
        arguments.update(draw(st.dictionaries(st.text(max_size=12), ANYTHING, max_size=2)))
    if (
        tool == "deploy"
        and arguments.get("environment") == "staging"
        and isinstance(arguments.get("version"), str)
        and VERSION.fullmatch(arguments["version"])
    ):
        # Staging needs no one's consent: a real version would really ship. Only nonsense goes there.
        arguments["version"] = draw(NONSENSE_VERSIONS)
    return arguments


# -- what must hold ------------------------------------------------------------------------------------------------


def snapshot(ledger: SqliteLedger, *, judged: bool = False) -> list[Any]:
    """Every record with its events, the approvals and the locks. ``judged``: leave out what validate writes."""
    records = []
    for record in ledger.list(limit=500):
        events = [e.model_dump(mode="json") for e in ledger.events(record.id)]
        dumped = record.model_dump(mode="json", exclude={"validation"} if judged else None)
        records.append((dumped, [e for e in events if not (judged and e["kind"] == "validated")]))
    approvals = [a.model_dump(mode="json") for a in ledger.list_approvals(limit=500)]
    locks = [ledger.lock_state("hello", environment) for environment in ("production", "staging")]
    return [records, approvals, locks]


def text(result: types.CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def check_answer(tool: str, arguments: dict[str, Any], result: types.CallToolResult, schema: dict[str, Any]) -> None:
    message = text(result)
    shown = f"{tool}({json.dumps(arguments)[:300]}) -> {message[:500]!r}"
    if not result.is_error:
        assert result.structured_content is not None, shown
        return
    assert "Traceback" not in message, shown
    assert not re.fullmatch(rf"(Error executing tool {tool}:?\s*)+", message.strip()), f"a crash: {shown}"
    assert message.strip(), shown
    names_a_field = any(re.search(rf"\b{re.escape(name)}\b", message) for name in schema.get("properties", {}))
    assert names_a_field or WHAT_TO_DO.search(message), f"unclear: {shown}"


@pytest.mark.parametrize("tool", TOOL_NAMES)
@settings(
    max_examples=EXAMPLES_PER_TOOL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzzed_arguments_get_a_result_or_a_clear_error_and_change_nothing(
    session: Session, tool: str, data: st.DataObject
) -> None:
    schema = session.schemas[tool]
    arguments = data.draw(arguments_for(tool, schema, session.ids), label="arguments")
    before = snapshot(session.ledger)
    session.crashes.clear()
    result = session.call(tool, arguments)
    check_answer(tool, arguments, result, schema)
    crashes = [f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage() for r in session.crashes]
    session.crashes.clear()
    assert not crashes, f"{tool}({json.dumps(arguments)[:300]}) crashed the server: {crashes}"
    if tool == "validate" and not result.is_error:
        assert snapshot(session.ledger, judged=True) == snapshot_judged(before), "validate wrote more than a verdict"
    else:
        assert snapshot(session.ledger) == before, f"{tool}({json.dumps(arguments)[:300]}) changed the ledger"


def snapshot_judged(full: list[Any]) -> list[Any]:
    """``full`` as `snapshot(judged=True)` would have taken it."""
    records, approvals, locks = full
    judged = []
    for dumped, events in records:
        kept = {k: v for k, v in dumped.items() if k != "validation"}
        judged.append((kept, [e for e in events if e["kind"] != "validated"]))
    return [judged, approvals, locks]

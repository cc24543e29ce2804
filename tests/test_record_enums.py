"""Step status, analysis phase and validate's verdict are enums in code and the same text in the ledger and on the wire.

tests/data/record_before_enums.json was written by the record model while ``Step.status`` was a plain string: a
record holding every step status and every analysis phase. A ledger written before the enums must read back into
them, and what deploy-mcp stores and serves now must be those same bytes.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.core.records import DeploymentRecord, Phase, StepStatus, VerdictOutcome
from deploy_mcp.ledger import open_ledger
from deploy_mcp.server.app import build_server
from deploy_mcp.tools.validation import MetricCheck

BEFORE = (Path(__file__).parent / "data" / "record_before_enums.json").read_text(encoding="utf-8").strip()
BEFORE_ID = "deploy-2026-12-04-001"


def test_a_record_written_before_the_enums_reads_into_them_and_writes_the_same_bytes() -> None:
    record = DeploymentRecord.model_validate_json(BEFORE)
    assert {step.status for step in record.steps} == set(StepStatus)
    assert all(type(step.status) is StepStatus for step in record.steps)
    assert [verdict.phase for verdict in record.verdicts] == list(Phase)
    assert record.model_dump_json() == BEFORE
    assert json.dumps(record.model_dump(mode="json")) == json.dumps(json.loads(BEFORE))


def test_the_ledger_stores_the_record_as_it_did_before(tmp_path: Path) -> None:
    db = tmp_path / ".deploy" / "ledger.db"
    with open_ledger(db) as ledger:
        created = ledger.create(service="web", version="1.1.0", environment="production", strategy="canary")
        ledger.save(DeploymentRecord.model_validate_json(BEFORE.replace(BEFORE_ID, created.id)))
        ledger.update(created.id, current_step=4)  # a write through the enum-typed model, as the runner does
        read = ledger.get(created.id)
    assert read is not None and read.steps[5].status is StepStatus.RUNNING
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT record FROM deployments WHERE id = ?", (created.id,)).fetchone()
    assert stored == BEFORE.replace(BEFORE_ID, created.id)


@pytest.mark.anyio
async def test_the_record_is_served_over_mcp_as_it_was_before(project_dir: Path) -> None:
    app = App.load(project_dir / "deploy.toml")
    try:
        ledger = app.ledger()
        created = ledger.create(service="web", version="1.1.0", environment="production", strategy="canary")
        # finished, so that no process takes it for an orphaned paused deployment and marks it interrupted
        before = BEFORE.replace(BEFORE_ID, created.id).replace('"status":"paused"', '"status":"rolled_back"')
        ledger.save(DeploymentRecord.model_validate_json(before))
        async with Client(build_server(app)) as client:
            result = await client.read_resource(f"deploy://deployments/{created.id}")
        content = result.contents[0]
        assert isinstance(content, types.TextResourceContents)
        assert json.loads(content.text)["record"] == json.loads(before)
    finally:
        app.close()


def test_validate_serves_its_verdict_and_phase_as_the_same_words() -> None:
    check = MetricCheck(source="local", window_seconds=60, version="1.1.0", phase=Phase.INCONCLUSIVE, reason="r")
    assert check.model_dump(mode="json")["phase"] == "Inconclusive"
    assert MetricCheck.model_validate({**check.model_dump(mode="json"), "phase": "Error"}).phase is Phase.ERROR
    assert [outcome.value for outcome in VerdictOutcome] == ["pass", "warn", "fail"]
    # messages and events put the enums into f-strings: the words there are the values too
    assert f"validate: {VerdictOutcome.WARN}; step 3 {StepStatus.SUCCEEDED}" == "validate: warn; step 3 succeeded"

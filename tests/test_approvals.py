"""A person's approval lets one deployment start, of the version they approved, and the enterprise gates count
only what shows a release and a rollback really worked: on a real ledger, and once on the real local platform."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from local_fixtures import HELLO, wait_until_gone

from deploy_mcp.app import App
from deploy_mcp.config.loader import load_project
from deploy_mcp.core.policy import PolicyDecision
from deploy_mcp.core.records import Status, Validation
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import PROVISIONAL_CLAIM_LEASE
from deploy_mcp.preflight import run_preflight
from deploy_mcp.services.approvals import approve, check_policy, claim_for_deploy
from deploy_mcp.services.launch import start_deployment
from deploy_mcp.services.subjects import deploy_subject
from deploy_mcp.targets.local import cli as local_cli

ENTERPRISE = """
mode = "brownfield-enterprise"

[policy]
deploy_windows = [{ days = ["mon", "tue", "wed", "thu"], start = "09:00", end = "16:00" }]
on_call = "bob"

[services.web]
command = ["./web", "--port", "{port}"]
replicas = 2
smoke = ["/health", "/"]

[services.web.environments.staging]
strategy = "rolling"

[services.web.environments.production]
strategy = "canary"
requires = ["staging"]
"""
THU_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # inside the window
FAILED = Validation(verdict="fail", passed=False)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    (tmp_path / "deploy.toml").write_text(ENTERPRISE, encoding="utf-8")
    loaded = App.load(tmp_path / "deploy.toml")
    try:
        yield loaded
    finally:
        loaded.close()


def production(app: App, version: str, change_id: str = "CHG-1") -> PolicyDecision:
    return check_policy(
        app,
        action="deploy",
        service="web",
        environment="production",
        version=version,
        change_id=change_id,
        now=THU_NOON,
    )


def failing(decision: PolicyDecision) -> dict[str, str]:
    return {c.name: c.detail for c in decision.checks if c.blocking and not c.passed}


def rehearse(app: App) -> None:
    """Staging success of 2.0.0 and 3.0.0 and a rollback rehearsed there, so only the approval is in question."""
    ledger = app.ledger()
    for version in ("2.0.0", "3.0.0"):
        ledger.create(
            service="web", version=version, environment="staging", strategy="rolling", status=Status.SUCCEEDED
        )
    reverted = ledger.create(service="web", version="9.0.0", environment="staging", strategy="rolling")
    ledger.create(service="web", version="3.0.0", environment="staging", strategy="rolling",
                  status=Status.SUCCEEDED, rollback_of=reverted.id)  # fmt: skip


def test_an_approval_lets_one_deployment_start_and_then_tells_the_person_what_to_run(app: App) -> None:
    rehearse(app)
    approve(app, "CHG-1", "web", "production", "change-board")
    assert production(app, "2.0.0").allowed

    claimed = claim_for_deploy(app, "web", "2.0.0", "production", "CHG-1", "starting:test")
    assert claimed is not None and claimed.approved_by == "change-board"
    record = app.ledger().create(service="web", version="2.0.0", environment="production", strategy="canary")
    assert app.ledger().use_approval(claimed.id, record.id, replacing="starting:test") is not None

    # The same change id again, for the next version: the approval is spent, and the refusal says so.
    refused = failing(production(app, "3.0.0"))
    assert set(refused) == {"change-approval"}
    text = refused["change-approval"]
    assert f"spent by deployment {record.id}" in text
    assert (
        "deploy-mcp approve CHG-1 --service web --environment production --approved-by YOUR-NAME --version 3.0.0"
        in text
    )
    assert "an agent must not run that command" in text
    with pytest.raises(UserError, match=f"Not started: .*spent by deployment {record.id}"):
        claim_for_deploy(app, "web", "3.0.0", "production", "CHG-1", "starting:again")

    # Preflight's approval item reads the same decision.
    report = run_preflight(app, "web", "3.0.0", "production", change_id="CHG-1", now=THU_NOON)
    item = report.item("change-approval")
    assert item is not None and item.status == "failed" and f"spent by deployment {record.id}" in item.evidence

    # The person approves again: one more deployment may start.
    approve(app, "CHG-1", "web", "production", "change-board", version="3.0.0")
    assert production(app, "3.0.0").allowed


def test_an_approval_for_one_version_does_not_carry_another(app: App) -> None:
    rehearse(app)
    made = approve(app, "CHG-2", "web", "production", "ana", version="2.0.0")
    assert made.version == "2.0.0"
    assert production(app, "2.0.0", "CHG-2").allowed
    text = failing(production(app, "3.0.0", "CHG-2"))["change-approval"]
    assert "approved by ana for web 2.0.0 in production, not for 3.0.0" in text and "--version 3.0.0" in text
    with pytest.raises(UserError, match=re.escape("not for 3.0.0")):
        claim_for_deploy(app, "web", "3.0.0", "production", "CHG-2", "starting:test")
    with pytest.raises(UserError, match="--version: give the one version"):
        approve(app, "CHG-2", "web", "production", "ana", version="2.0.0 beta")


def test_a_deployment_id_is_not_a_change_to_deploy_under(app: App) -> None:
    rehearse(app)
    running = app.ledger().create(service="web", version="2.0.0", environment="production", strategy="canary")
    approve(app, running.id, "web", "production", "ana")  # a person approved acting on that deployment
    text = failing(production(app, "3.0.0", running.id))["change-approval"]
    assert "is a deployment id, not a change request" in text and "rollback, promote or resume" in text
    with pytest.raises(UserError, match="is a deployment id"):
        claim_for_deploy(app, "web", "3.0.0", "production", running.id, "starting:test")
    # It still stands for actions on that deployment, and is not spent by them.
    assert app.ledger().find_approval(running.id, "web", "production") is not None


def test_staging_must_show_a_validated_success_and_a_deliberate_rollback(app: App) -> None:
    ledger = app.ledger()
    approve(app, "CHG-1", "web", "production", "change-board")

    def staging(version: str, **fields: object) -> str:
        return ledger.create(service="web", version=version, environment="staging", strategy="rolling", **fields).id

    ledger.update(staging("2.0.0", status=Status.SUCCEEDED), validation=FAILED)  # a later `validate` failed it
    staging("1.9.0", status=Status.ROLLED_BACK)  # the runner retreating from a bad step by itself
    reverted = staging("1.8.0")
    ledger.update(staging("1.7.0", status=Status.SUCCEEDED, rollback_of=reverted), validation=FAILED)
    ledger.create(service="web", version="2.0.0", environment="production", strategy="canary",
                  status=Status.SUCCEEDED, rollback_of=reverted)  # fmt: skip
    assert set(failing(production(app, "2.0.0"))) == {"requires-staging", "rollback-tested"}

    staging("2.0.0", status=Status.SUCCEEDED)
    staging("1.7.0", status=Status.SUCCEEDED, rollback_of=reverted)
    assert production(app, "2.0.0").allowed


def test_without_enterprise_mode_only_an_approval_that_consent_may_have_rested_on_is_enforced(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text(ENTERPRISE.replace('mode = "brownfield-enterprise"', ""), encoding="utf-8")
    app = App.load(tmp_path / "deploy.toml")
    try:
        # Nothing approved: the user confirmed in their client, so the change id is only a label.
        assert claim_for_deploy(app, "web", "2.0.0", "production", "CHG-5", "starting:a") is None
        assert claim_for_deploy(app, "web", "2.0.0", "staging", None, "starting:b") is None
        made = approve(app, "CHG-5", "web", "production", "ana")
        assert app.ledger().use_approval(made.id, "deploy-2026-11-26-001") is not None
        with pytest.raises(UserError, match="spent by deployment deploy-2026-11-26-001"):
            claim_for_deploy(app, "web", "3.0.0", "production", "CHG-5", "starting:c")
        assert claim_for_deploy(app, "web", "3.0.0", "staging", "CHG-5", "starting:d") is None
    finally:
        app.close()


# -- the real thing: a deployment on the local platform spends the approval ------------------------------------


@pytest.fixture
def hello(tmp_path: Path) -> Iterator[App]:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    (tmp_path / "deploy.toml").write_text(
        f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"

[services.hello.environments.production]
strategy = "rolling"
analysis = {{ interval = "1s", bake = "1s", min_requests = 1 }}
""",
        encoding="utf-8",
    )
    for args in (["init", "-q"], ["add", "deploy.toml"], ["commit", "-qm", "release 1.0.0"], ["tag", "v1.0.0"]):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", *args], check=True)
    app = App.load(tmp_path / "deploy.toml")
    try:
        yield app
    finally:
        app.close()
        local_cli.stop(load_project(tmp_path / "deploy.toml"), "hello")
        left = wait_until_gone(tmp_path)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the test: {left}"


def claimed_ago(app: App, approval_id: int, seconds: float) -> None:
    """Backdate an approval's claim, as if the process that took it had died ``seconds`` ago."""
    moment = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")
    conn = sqlite3.connect(app.ledger_path, isolation_level=None)
    try:
        conn.execute("UPDATE approvals SET used_at = ? WHERE id = ?", (moment, approval_id))
    finally:
        conn.close()


def test_a_claim_left_by_a_deploy_that_died_while_starting_lapses(hello: App) -> None:
    made = approve(hello, "CHG-9", "hello", "production", "Ana")
    assert hello.ledger().use_approval(made.id, "starting:deadbeef") is not None  # its process then died
    # Still within its lease, the claim may belong to a deploy that is starting right now: no second one.
    with pytest.raises(UserError, match="Not started"):
        start_deployment(hello, "hello", "1.0.0", "production", None, deployed_by="agent", change_id="CHG-9")
    assert hello.ledger().list(service="hello") == []

    claimed_ago(hello, made.id, PROVISIONAL_CLAIM_LEASE + 1)
    record = start_deployment(hello, "hello", "1.0.0", "production", None, deployed_by="agent", change_id="CHG-9")
    assert record.enterprise is not None and record.enterprise.approved_by == "Ana"
    spent = hello.ledger().find_approval("CHG-9", "hello", "production", include_used=True)
    assert spent is not None and spent.used_by == record.id  # the dead claim was replaced by this deployment
    hello.runner().wait(record.id, 60)


def test_a_started_deployment_spends_the_approval_and_the_next_version_is_refused(hello: App) -> None:
    approve(hello, "CHG-7", "hello", "production", "Ana")
    record = start_deployment(hello, "hello", "1.0.0", "production", None, deployed_by="agent", change_id="CHG-7")
    assert record.enterprise is not None and record.enterprise.approved_by == "Ana"
    assert record.enterprise.change_id == "CHG-7"
    tagged = subprocess.run(["git", "-C", str(hello.project.root), "rev-parse", "v1.0.0^{commit}"], capture_output=True)
    assert record.changes.commits == [tagged.stdout.decode().strip()]  # the record says what was shipped
    spent = hello.ledger().find_approval("CHG-7", "hello", "production", include_used=True)
    assert spent is not None and spent.used_by == record.id
    assert hello.ledger().find_approval("CHG-7", "hello", "production") is None
    hello.runner().wait(record.id, 60)

    with pytest.raises(UserError, match=f"spent by deployment {record.id}.*--version 2.0.0"):
        start_deployment(hello, "hello", "2.0.0", "production", None, deployed_by="agent", change_id="CHG-7")
    assert [r.id for r in hello.ledger().list(service="hello")] == [record.id]  # nothing else started

    # Refused before anyone is asked (the MCP tool's resolver and the CLI build this same subject): nobody says
    # yes to a deploy that would then not start, and the person learns why rather than to approve again.
    with pytest.raises(UserError, match=f"Not started: .*spent by deployment {record.id}.*--version 2.0.0"):
        deploy_subject(hello, "hello", "2.0.0", "production", None, "CHG-7")

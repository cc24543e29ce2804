"""Review of issue 12's approvals on a real team server: an approval of a deployment is one action, not a licence.

A releaser approved a deployer's `resume` of a production deployment that had paused for a human decision. The
approval (of the deployment id) then counted for every later action on that deployment for 24 hours: when the
rollout paused again, the deployer promoted it past the failing step on the same approval, with no person asked.
An approval now lets one action through, as an approval of a change lets one deployment start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_identities_http import PRODUCTION, TeamServer, approvals_of, approve_on_server, call, team, text

from deploy_mcp.app import App
from deploy_mcp.core.records import Status

__all__ = ["team"]  # the fixture, imported so pytest finds it

pytestmark = pytest.mark.anyio


@pytest.fixture
def ledger(team: TeamServer) -> Iterator[App]:
    app = App.load(team.project / "deploy.toml")
    try:
        yield app
    finally:
        app.close()


def wait_for(app: App, deployment: str, *statuses: Status) -> Any:
    deadline = time.monotonic() + 90
    while True:
        record = app.ledger().get(deployment)
        if record.status in statuses:
            return record
        assert time.monotonic() < deadline, f"{deployment} stayed {record.status}"
        time.sleep(0.2)


async def test_an_approval_of_a_deployment_lets_one_action_through_not_every_later_one(
    team: TeamServer, ledger: App
) -> None:
    assert approve_on_server(team, "alice", "CHG-R1").returncode == 0
    started = await call(team, "ci-agent", "deploy", {**PRODUCTION, "change_id": "CHG-R1"})
    assert not started.is_error, text(started)
    deployment = started.structured_content["record"]["id"]
    try:
        # No traffic reaches production here, so the analysis cannot pass: the rollout pauses for a person.
        wait_for(ledger, deployment, Status.PAUSED)
        approved = approve_on_server(team, "bob", deployment)  # bob: "run the analysis again"
        assert approved.returncode == 0, approved.stderr

        resumed = await call(team, "ci-agent", "resume", {"deployment_id": deployment})
        assert not resumed.is_error, text(resumed)
        wait_for(ledger, deployment, Status.PAUSED)  # it paused again: the person decides again

        promoted = await call(team, "ci-agent", "promote", {"deployment_id": deployment})
        assert promoted.is_error, "the deployer promoted production past a failing step on an approval already used"
        assert "token:ci-agent has the deployer role" in text(promoted)
        assert ledger.ledger().get(deployment).status is Status.PAUSED
    finally:
        if ledger.ledger().get(deployment).status in (Status.PAUSED, Status.IN_PROGRESS, Status.PENDING):
            stopped = await call(team, "alice", "abort", {"deployment_id": deployment, "reason": "end of the test"})
            assert not stopped.is_error, text(stopped)
            wait_for(ledger, deployment, Status.ABORTED, Status.ROLLED_BACK, Status.FAILED)


@pytest.mark.parametrize("expires_in", ["1e300", "Infinity"])
def test_an_approval_that_would_outlive_every_date_is_refused_naming_the_field(
    team: TeamServer, expires_in: str
) -> None:
    """It was a 500 with a traceback on the server's log (OverflowError in the date arithmetic)."""
    fields = '"change_id": "CHG-LONG", "service": "hello", "environment": "production"'
    body = f'{{{fields}, "expires_in": {expires_in}}}'  # written out: json.dumps would not write 1e300 as such
    response = httpx.post(
        team.url.removesuffix("/mcp") + "/approvals",
        content=body,
        headers={"Authorization": f"Bearer {team.tokens['alice']}", "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert "expires_in" in response.json()["error_description"]
    assert approvals_of(team, "CHG-LONG") == []

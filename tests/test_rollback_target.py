"""Which version a rollback returns to, asked and run through the project's MCP server.

The question the user answers and the rollback the runner runs come from one resolution, so the version named in
the question is the version that serves afterwards; a rollback the runner would refuse is refused before anyone
is asked. The ledger is seeded directly (the history a rollback reads), the platform is the real local one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from local_fixtures import free_port, wait_until_gone
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.core.target import Release
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio
HELLO = Path(__file__).resolve().parents[1] / "examples" / "hello" / "server.py"
ROLLBACK = {"service": "hello", "environment": "production", "reason": "checkout errors"}


def config(port: int, extra: str = "") -> str:
    command = json.dumps([sys.executable, str(HELLO), "--port", "{port}"])
    return f"""
[services.hello]
command = {command}
replicas = 1
health = "/health"
smoke = ["/health"]

[services.hello.environments.production]
strategy = "canary"
steps = [50, 100]
port = {port}
{extra}
"""


def load(folder: Path, extra: str = "") -> App:
    (folder / "deploy.toml").write_text(config(free_port(), extra))
    return App.load(folder / "deploy.toml")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = load(tmp_path)
    try:
        yield app
    finally:
        app.close()
        from deploy_mcp.targets.local import cli

        cli.stop(app.project, "hello")
        assert wait_until_gone(tmp_path) == [], "processes left running"


def record(app: App, version: str, status: Status = Status.SUCCEEDED, **fields: Any) -> DeploymentRecord:
    validated = {"validation": {"passed": True}} if status is Status.SUCCEEDED else {}
    return app.ledger().create(
        service="hello",
        version=version,
        environment="production",
        strategy="canary",
        status=status,
        **{**validated, **fields},
    )


class User:
    """The person behind the client's elicitation callback: records each question, answers every one alike."""

    def __init__(self, answer: str = "accept") -> None:
        self.answer = answer
        self.questions: list[str] = []

    async def __call__(self, _context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.questions.append(params.message)
        content = {"confirm": True} if self.answer == "accept" else None
        return types.ElicitResult(action=self.answer, content=content)


async def rollback(app: App, user: User, **arguments: Any) -> types.CallToolResult:
    async with Client(build_server(app), elicitation_callback=user) as client:
        return await client.call_tool("rollback", {**ROLLBACK, **arguments})


def text(result: types.CallToolResult) -> str:
    return " ".join(part.text for part in result.content if isinstance(part, types.TextContent))


def versions(app: App) -> list[str]:
    return [r.version for r in app.ledger().list(service="hello", environment="production", limit=50)]


async def test_the_question_names_the_version_the_rollback_restores(app: App) -> None:
    first = record(app, "1.0.0")
    good = record(app, "2.0.0")
    record(app, "3.0.0", Status.ROLLED_BACK, reason="error rate 30% at 50% of traffic")
    release = Release.resolve("hello", app.project.config.services["hello"], "2.0.0")
    app.platform("hello").workload.start_version("hello", "production", release, 1)  # 2.0.0 serves: 3.0.0 was undone
    user = User()

    async with Client(build_server(app), elicitation_callback=user) as client:
        result = await client.call_tool("rollback", {**ROLLBACK, "wait_seconds": 60})
        assert not result.is_error, text(result)
        view = result.structured_content or {}
        for _ in range(120):
            if view["record"]["status"] not in ("pending", "in_progress"):
                break
            await anyio.sleep(0.25)
            view = (
                await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
            ).structured_content

    assert user.questions == [
        f"Roll back hello in production from 2.0.0 ({good.id}) to 1.0.0, the last version that passed validation "
        f"({first.id})? 1.0.0 no longer runs: it is started at full size and checked, then takes all traffic at "
        "once. Reason given: checkout errors"
    ]
    back = view["record"]
    assert (back["status"], back["version"], back["rollback_of"]) == ("succeeded", "1.0.0", good.id), back
    assert [v["version"] for v in view["live"]["versions"] if v["weight"]] == ["1.0.0"]


@pytest.mark.parametrize(
    ("status", "validated", "said"),
    [
        (Status.FAILED, False, "is failed"),
        (Status.ROLLED_BACK, False, "is rolled_back"),
        (Status.SUCCEEDED, False, "did not pass validation"),
    ],
)
async def test_to_a_deployment_that_did_not_pass_validation_is_refused_before_asking(
    app: App, status: Status, validated: bool, said: str
) -> None:
    record(app, "1.0.0")
    unproven = record(app, "1.5.0", status, validation={"passed": validated})
    record(app, "2.0.0")
    user = User()

    result = await rollback(app, user, to=unproven.id)

    assert result.is_error
    assert f"to: {unproven.id} (1.5.0) {said}, so it does not prove 1.5.0 good" in text(result)
    assert 'to="1.5.0"' in text(result), "the refusal says how to return to it anyway"
    assert user.questions == []
    assert versions(app) == ["2.0.0", "1.5.0", "1.0.0"]


async def test_a_version_given_by_hand_is_asked_about_as_unvalidated(app: App) -> None:
    record(app, "1.0.0")
    record(app, "1.5.0", Status.FAILED)
    current = record(app, "2.0.0")
    user = User("decline")

    result = await rollback(app, user, to="1.5.0")

    assert result.is_error and "declined" in text(result)
    assert user.questions[0].startswith(
        f"Roll back hello in production from 2.0.0 ({current.id}) to 1.5.0, a version given by hand that has not "
        "passed validation here?"
    )
    assert versions(app) == ["2.0.0", "1.5.0", "1.0.0"]


async def test_an_older_roll_forward_only_release_is_not_crossed_to_an_unrecorded_version(app: App) -> None:
    record(app, "1.0.0")
    forward = record(app, "2.0.0", roll_forward_only=True)
    record(app, "2.1.0")
    user = User("decline")

    # 0.9.0 predates the ledger: it is older than every record, so it would cross 2.0.0's migrations.
    refused = await rollback(app, user, to="0.9.0")
    # 1.0.0 served before 2.0.0: returning to it crosses them too.
    older = await rollback(app, user, to="1.0.0")

    for result in (refused, older):
        assert result.is_error
        assert f"{forward.id} shipped 2.0.0 with migrations the older version cannot run against" in text(result)
        assert "Fix forward" in text(result)
    assert user.questions == []

    # 2.0.0 itself runs against its own migrations: returning to it (the default) crosses nothing irreversible.
    allowed = await rollback(app, user)
    assert "declined" in text(allowed)
    assert len(user.questions) == 1 and " to 2.0.0, the last version that passed validation" in user.questions[0]


async def test_a_rolled_back_roll_forward_only_release_still_blocks_an_older_target(app: App) -> None:
    record(app, "1.0.0")
    record(app, "2.0.0")
    forward = record(app, "3.0.0", Status.ROLLED_BACK, roll_forward_only=True)  # its migrations may have run
    user = User("decline")

    result = await rollback(app, user)

    assert result.is_error and f"{forward.id} shipped 3.0.0" in text(result)
    assert user.questions == []


async def test_declaring_the_migrations_reversible_lifts_the_refusal(tmp_path: Path) -> None:
    app = load(tmp_path, '\n[services.hello.versions."2.0.0"]\nmigrations_irreversible = false\n')
    try:
        record(app, "1.0.0")
        record(app, "2.0.0", roll_forward_only=True)  # marked when it shipped; deploy.toml now says otherwise
        user = User("decline")
        result = await rollback(app, user)
        assert "declined" in text(result)
        assert user.questions and " to 1.0.0, the last version that passed validation" in user.questions[0]
    finally:
        app.close()


async def test_nothing_standing_to_roll_back_is_refused_before_asking(app: App) -> None:
    record(app, "1.0.0", Status.FAILED)
    user = User()
    result = await rollback(app, user)
    assert result.is_error
    assert "every deployment of hello in production failed, was rolled back or was aborted" in text(result)
    assert user.questions == []


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])  # legacy negotiates 2025-11-25
async def test_when_the_deployments_change_while_the_user_reads_the_question_nothing_is_rolled_back(
    app: App, protocol: str
) -> None:
    """Up to 2025-11-25 the question is asked in the middle of the call, so the runner checks that what it would
    do is what the user agreed to; from 2026-07-28 the call is retried and the subject worked out again, which
    here refuses outright (a changed question would be asked again, never answered by the old yes)."""
    record(app, "1.0.0")
    good = record(app, "2.0.0")
    release = Release.resolve("hello", app.project.config.services["hello"], "2.0.0")
    app.platform("hello").workload.start_version("hello", "production", release, 1)
    newer: list[DeploymentRecord] = []

    class SlowUser(User):
        """Reads the question while another deployment of the service finishes, then says yes."""

        async def __call__(self, context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
            newer.append(record(app, "2.1.0"))
            return await super().__call__(context, params)

    user = SlowUser()
    async with Client(build_server(app), mode=protocol, elicitation_callback=user) as client:
        result = await client.call_tool("rollback", {**ROLLBACK, "wait_seconds": 0})

    assert user.questions and f"from 2.0.0 ({good.id}) to 1.0.0" in user.questions[0]
    assert result.is_error, text(result)
    message = text(result)
    # 2.1.0 is now the deployment a rollback would revert; the platform still serves 2.0.0, so it is refused
    assert "2.0.0 already serves" in message, message
    if protocol == "legacy":
        assert f"the user agreed to revert {good.id} to 1.0.0" in message and "would now be refused" in message
    assert versions(app) == ["2.1.0", "2.0.0", "1.0.0"]  # no rollback record was written


async def test_a_rollout_driven_by_another_process_is_refused_before_asking(app: App) -> None:
    record(app, "1.0.0")
    running = record(app, "2.0.0", Status.IN_PROGRESS)
    other = "pid 4242 on another-host (0123abcd)"  # a live server elsewhere holds the deployment's lock
    assert app.ledger().acquire_lock("hello", "production", other, deployment_id=running.id, lease_seconds=60).acquired
    user = User()

    result = await rollback(app, user, wait_seconds=0)

    assert result.is_error and user.questions == []  # nobody is asked about an abort this server cannot do
    message = text(result)
    assert f"{running.id} (hello 2.0.0) is being deployed by another deploy-mcp process ({other})" in message
    assert "abort it" in message
    assert versions(app) == ["2.0.0", "1.0.0"]

"""The runner judges a release by the migrations it brings: an irreversible new one makes the deployment
roll-forward-only even when nobody declared it, and one that earlier releases shipped does not.

Real local platform (examples/hello behind the weighted router, under light load), real ledger file, real lint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_fixtures import HELLO, free_port, teardown

from deploy_mcp.config.loader import load_project
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.core.runner import Runner, RunnerError
from deploy_mcp.ledger import SqliteLedger
from deploy_mcp.migrations.release import for_deployment
from deploy_mcp.targets.local.loadgen import BackgroundLoad
from deploy_mcp.targets.local.platform import create_platform

SERVICE, ENVIRONMENT = "hello", "staging"


def config(port: int) -> str:
    return f"""\
[services.hello]
command = {json.dumps(["{python}", str(HELLO), "--port", "{port}"])}
replicas = 1
health = "/health"
migrations = "db"

[services.hello.environments.staging]
strategy = "rolling"
port = {port}
analysis = {{ interval = "0.5s", bake = "2s", min_requests = 5 }}
"""


class Release:
    """A project folder with its platform, ledger and runner; ``ship`` deploys a version and waits for the end."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        (folder / "deploy.toml").write_text(config(self.port), encoding="utf-8")
        (folder / "db").mkdir()
        self.folder = folder
        self.project = load_project(folder / "deploy.toml")
        self.target = create_platform(self.project, health_interval=0.5, start_timeout=20.0, kill_timeout=3.0)
        self.ledger = SqliteLedger(self.project.state_dir / "ledger.db")
        self.runner = Runner(self.project, self.ledger, self.target, holder="test", drain_timeout=2.0)

    def migration(self, name: str, up: str, down: str) -> None:
        (self.folder / "db" / f"{name}.up.sql").write_text(up, encoding="utf-8")
        (self.folder / "db" / f"{name}.down.sql").write_text(down, encoding="utf-8")

    def ship(self, version: str) -> DeploymentRecord:
        serving = self.target.state(SERVICE, ENVIRONMENT).serving
        plan = build_plan(
            self.project.config, SERVICE, version, ENVIRONMENT, current_version=serving[0] if serving else None
        )
        record = self.runner.start(plan)
        with BackgroundLoad(f"http://127.0.0.1:{self.port}/", rate=100.0, concurrency=8):
            record = self.runner.wait(record.id, 60.0)
        assert record.status is Status.SUCCEEDED, record.reason
        return record

    def migration_event(self, record: DeploymentRecord) -> str:
        return next(e.message for e in self.ledger.events(record.id) if e.kind == "migrations")

    def close(self) -> None:
        try:
            self.runner.close(timeout=15.0)
        finally:
            teardown(self.target)
            self.ledger.close()


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Release]:
    folder = tmp_path / "project"
    folder.mkdir()
    project = Release(folder)
    try:
        yield project
    finally:
        project.close()


def test_an_undeclared_drop_column_makes_its_release_roll_forward_only_and_only_that_one(release: Release) -> None:
    release.migration(
        "001_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n", "SELECT 1; -- keep the table\n"
    )
    first = release.ship("1.0.0")
    assert not first.roll_forward_only
    assert [entry.split(" sha256:")[0] for entry in first.changes.migrations] == [
        "db/001_users.up.sql",
        "db/001_users.down.sql",
    ]
    assert "every file counts as new" in release.migration_event(first)

    release.migration("002_drop_email", "ALTER TABLE users DROP COLUMN email;\n", "ALTER TABLE users ADD email text;\n")
    dropped = release.ship("2.0.0")  # deploy.toml says nothing about 2.0.0
    assert dropped.roll_forward_only
    assert len(dropped.changes.migrations) == 4
    event = release.migration_event(dropped)
    assert "db/002_drop_email.up.sql:1 drops column users.email" in event
    assert 'services.hello.versions."2.0.0".migrations_irreversible is not set' in event
    with pytest.raises(RunnerError, match=r"refusing to roll hello in staging back to 1\.0\.0"):
        release.runner.rollback(SERVICE, ENVIRONMENT, reason="try")

    later = release.ship("3.0.0")  # the drop is history now: this release can be rolled back
    assert not later.roll_forward_only
    assert "no migration files new since" in release.migration_event(later)


def test_destructive_sql_appended_to_a_shipped_file_makes_the_release_roll_forward_only(tmp_path: Path) -> None:
    """A declarative schema file ships with every release under one name: only its content says what changed."""
    (tmp_path / "db").mkdir()
    schema = tmp_path / "db" / "schema.sql"
    schema.write_text("CREATE TABLE users (id bigint PRIMARY KEY, email text);\n", encoding="utf-8")
    with SqliteLedger(tmp_path / "ledger.db") as ledger:

        def judge(version: str) -> list[str]:
            found = for_deployment("db", tmp_path, ledger, SERVICE, version, ENVIRONMENT, release=None)
            ledger.create(
                service=SERVICE,
                version=version,
                environment=ENVIRONMENT,
                strategy="rolling",
                status=Status.SUCCEEDED,
                roll_forward_only=found.roll_forward_only,
                changes={"migrations": found.files},
            )
            return [found.message, *found.files] if found.roll_forward_only else []

        assert not judge("1.0.0")
        first = ledger.list(service=SERVICE)[0].changes.migrations
        assert len(first) == 1 and first[0].startswith("db/schema.sql sha256:") and len(first[0].split(":")[1]) == 16
        assert not judge("1.1.0")  # the same content again: history

        with schema.open("a", encoding="utf-8") as file:
            file.write("ALTER TABLE users DROP COLUMN email;\n")
        marked = judge("2.0.0")
        assert marked and "db/schema.sql:2 drops column users.email" in marked[0]
        assert marked[1] != first[0] and marked[1].startswith("db/schema.sql sha256:")
        assert not judge("2.1.0")  # shipped with that content now

        # A record written before hashes were recorded names the file only: it counts as changed.
        ledger.create(
            service=SERVICE,
            version="2.1.1",
            environment=ENVIRONMENT,
            strategy="rolling",
            status=Status.SUCCEEDED,
            changes={"migrations": ["db/schema.sql"]},
        )
        assert judge("2.2.0")

"""Choosing the team ledger: deploy.toml's ``ledger`` or DEPLOY_MCP_LEDGER, the password kept out of both the file
and every message, the pip command when psycopg is missing, and an agent reading a PostgreSQL ledger over MCP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE_CONFIG
from mcp import Client
from postgres_fixture import Database, make_database, postgres  # noqa: F401

from deploy_mcp.app import App
from deploy_mcp.config.loader import ConfigError, parse_config
from deploy_mcp.ledger import LedgerError, open_ledger
from deploy_mcp.ledger.dsn import ENV_LEDGER, ENV_PASSWORD_FILE, LedgerUrl, mask, resolve
from deploy_mcp.ledger.postgres import PostgresLedger
from deploy_mcp.server.app import build_server

pytestmark = pytest.mark.anyio


def url_of(database: Database, user: str = "postgres") -> str:
    return f"postgresql://{user}@127.0.0.1:{database.server.port}/{database.name}"


@pytest.fixture
def db(make_database: Callable[[], Database]) -> Database:  # noqa: F811
    return make_database()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in (ENV_LEDGER, ENV_PASSWORD_FILE, "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def test_deploy_toml_refuses_a_password_and_names_the_fix() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config('ledger = "postgresql://deploy:hunter2@db.internal/deploy_mcp"\n')
    message = str(refused.value)
    assert "hunter2" not in message
    assert "ledger" in message and "PGPASSWORD" in message and ENV_PASSWORD_FILE in message
    with pytest.raises(ConfigError, match="password does not belong"):
        parse_config('ledger = "postgresql://deploy@db.internal/deploy_mcp?password=hunter2"\n')
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        parse_config('ledger = "mysql://deploy@db.internal/x"\n')
    assert parse_config('ledger = "postgresql://deploy@db.internal/deploy_mcp"\n').ledger is not None


def test_the_environment_overrides_deploy_toml_and_the_password_file_is_read(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    assert resolve(None) is None
    assert resolve("postgresql://a@h/x").url == "postgresql://a@h/x"
    clean_env.setenv(ENV_LEDGER, "postgresql://b:s3cret@h2/y")
    chosen = resolve("postgresql://a@h/x")
    assert chosen is not None and chosen.source == ENV_LEDGER and chosen.shown == "postgresql://b:***@h2/y"
    secret = tmp_path / "password"
    secret.write_text("pw-from-file\n")
    clean_env.setenv(ENV_PASSWORD_FILE, str(secret))
    chosen = resolve(None)
    assert chosen is not None and chosen.password == "pw-from-file"
    assert chosen.scrub("auth failed for pw-from-file and s3cret") == "auth failed for *** and ***"
    clean_env.setenv(ENV_PASSWORD_FILE, str(tmp_path / "missing"))
    with pytest.raises(Exception, match=f"{ENV_PASSWORD_FILE}: cannot read"):
        resolve(None)
    assert mask("postgresql://u@h/d?sslmode=require&password=x") == "postgresql://u@h/d?sslmode=require&password=***"


def test_a_password_from_a_file_opens_the_ledger_and_is_never_shown(db: Database, tmp_path: Path) -> None:
    with db.connect() as conn:
        conn.execute("CREATE ROLE deployer LOGIN PASSWORD 'correct-horse'")
        conn.execute(f'GRANT ALL ON DATABASE "{db.name}" TO deployer')
        conn.execute("GRANT ALL ON SCHEMA public TO deployer")
    try:
        with PostgresLedger(LedgerUrl(url_of(db, "deployer"), "correct-horse", "test")) as ledger:
            assert ledger.list() == []
            assert "correct-horse" not in ledger.location
        # The throwaway cluster trusts every local user; a URL with a wrong password still shows it masked.
        shown = PostgresLedger(LedgerUrl(url_of(db, "deployer:wrong-horse"), None, "test"))
        assert "wrong-horse" not in shown.location and "***" in shown.location
        shown.close()
    finally:
        with db.connect() as conn:
            conn.execute("DROP OWNED BY deployer")
            conn.execute("DROP ROLE deployer")


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as refused:
        open_ledger("postgresql://deploy:hunter2@127.0.0.1:1/deploy_mcp?connect_timeout=2")
    message = str(refused.value)
    assert "hunter2" not in message and "***" in message and "cannot connect to the ledger" in message


def test_without_psycopg_a_tool_answers_with_the_pip_command(tmp_path: Path) -> None:
    """A server whose deploy.toml names a PostgreSQL ledger, on a machine without psycopg: deployment_history,
    called over MCP, fails with the command that fixes it, and nothing else breaks."""
    (tmp_path / "deploy.toml").write_text(
        'ledger = "postgresql://deploy@db.internal/deploy_mcp"\n' + SAMPLE_CONFIG, encoding="utf-8"
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["psycopg"] = None  # as if it were not installed
        import anyio
        from pathlib import Path
        from mcp import Client
        from deploy_mcp.app import App
        from deploy_mcp.server.app import build_server

        async def main():
            app = App.load(Path({str(tmp_path / "deploy.toml")!r}))
            async with Client(build_server(app)) as client:
                history = await client.call_tool("deployment_history", {{}})
                plan = await client.call_tool(
                    "plan_deployment", {{"service": "web", "version": "2.0.0", "environment": "staging"}}
                )
            print("ERROR" if history.is_error else "OK", history.content[0].text)
            print("PLAN", "error" if plan.is_error else "ok")

        anyio.run(main)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "ERROR" in out.stdout and "pip install 'deploy-mcp[postgresql]'" in out.stdout, out.stdout
    assert "Traceback" not in out.stdout
    assert "PLAN ok" in out.stdout


async def test_an_agent_reads_the_team_ledger_over_mcp(
    db: Database, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """deploy.toml names the database; history and status come from it, and no ledger file appears."""
    (tmp_path / "deploy.toml").write_text(f'ledger = "{url_of(db)}"\n' + SAMPLE_CONFIG, encoding="utf-8")
    with open_ledger(url_of(db)) as ledger:
        record = ledger.create(service="web", version="2.0.0", environment="staging", strategy="rolling")
    app = App.load(tmp_path / "deploy.toml", start=Path("/"))
    try:
        async with Client(build_server(app)) as client:
            history = await client.call_tool("deployment_history", {"service": "web"})
            status = await client.call_tool("deployment_status", {"deployment_id": record.id})
            config = await client.read_resource("deploy://config")
    finally:
        app.close()
    assert not history.is_error and [r["id"] for r in history.structured_content["records"]] == [record.id]
    assert not status.is_error, status.content
    assert not (tmp_path / ".deploy" / "ledger.db").exists()
    assert db.name in config.contents[0].text  # the configured URL is shown, with nothing secret in it


def test_a_replica_holding_by_policy_marks_a_dead_drivers_deployment_interrupted_and_leaves_it(
    db: Database, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """policy.on_interrupted = "hold" (the default): the watch only says interrupted; a person decides. And only a
    deployment whose driver died counts as one to take over, not one handed back on purpose."""
    from deploy_mcp.core.records import Status
    from deploy_mcp.core.runner.takeover import TakeoverWatch, died

    (tmp_path / "deploy.toml").write_text(f'ledger = "{url_of(db)}"\n' + SAMPLE_CONFIG, encoding="utf-8")
    with open_ledger(url_of(db)) as ledger:
        orphan = ledger.create(
            service="web", version="2.0.0", environment="staging", strategy="rolling", status="in_progress"
        )
        assert ledger.acquire_lock("web", "staging", "pid 1 on elsewhere (0000dead)", deployment_id=orphan.id,
                                   lease_seconds=0.2).acquired  # fmt: skip
        handed_back = ledger.create(
            service="web", version="1.0.0", environment="production", strategy="canary", status="interrupted"
        )
        ledger.append_event(handed_back.id, "interrupted", "the server stopped; resume it later")
    time.sleep(0.4)  # the dead driver's lease runs out (its session is closed: no advisory lock either)

    app = App.load(tmp_path / "deploy.toml", start=Path("/"))
    try:
        assert TakeoverWatch(app, period=0.1).check() == []
        ledger = app.ledger()
        found = ledger.get(orphan.id)
        assert found is not None and found.status is Status.INTERRUPTED
        assert died(ledger, found)
        assert not died(ledger, ledger.get(handed_back.id))
        ledger.append_event(orphan.id, "resumed", "a person took it over")
        assert not died(ledger, found)
    finally:
        app.close()

"""The deploy-mcp command as a person at a terminal uses it: real subprocesses, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy_mcp.app import App


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DEPLOY_MCP_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "deploy_mcp", *args],
        cwd=cwd,
        env={**base, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_init_writes_a_starter_that_loads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = run("init", "--service", "api", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    text = (tmp_path / "deploy.toml").read_text()
    assert "[services.api.environments.production]" in text
    assert '["{python}", "-m", "http.server"' in text  # deploy-mcp's own interpreter: no bare `python` needed
    again = run("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert (tmp_path / "deploy.toml").read_text() == text


def test_history_prints_the_ledger_as_a_table(project_dir: Path) -> None:
    app = App.load(project_dir / "deploy.toml")
    first = app.ledger().create(service="web", version="1.0.0", environment="staging", strategy="rolling")
    app.ledger().create(service="web", version="0.9.0", environment="staging", strategy="rolling", rollback_of=first.id)
    app.close()
    result = run("history", cwd=project_dir / ".deploy")  # found by walking up from a subfolder
    assert result.returncode == 0, result.stderr
    assert first.id in result.stdout and "1.0.0" in result.stdout and "rolling" in result.stdout
    assert f"reverts {first.id}" in result.stdout


def test_history_without_a_project_says_how_to_start(tmp_path: Path) -> None:
    result = run("history", cwd=tmp_path)
    assert result.returncode == 0
    assert "deploy-mcp init" in result.stdout


def test_invalid_config_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text('[services.web.environments.production]\nstrategy = "canery"\n')
    result = run("history", cwd=tmp_path)
    assert result.returncode == 2
    assert "services.web.environments.production.strategy: 'canery' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_flag_target(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nope.toml"), "history", cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_local_status_and_stop_on_an_empty_project(project_dir: Path) -> None:
    status = run("local", "status", cwd=project_dir)
    assert status.returncode == 0, status.stderr
    assert "Nothing runs" in status.stdout
    stop = run("local", "stop", "nope", cwd=project_dir)
    assert stop.returncode == 2
    assert "nope" in stop.stderr and "Traceback" not in stop.stderr


def test_approve_needs_a_person_at_a_terminal(project_dir: Path) -> None:
    args = ("approve", "CHG-1", "--service", "web", "--environment", "production", "--approved-by", "Ana")
    refused = run(*args, cwd=project_dir)
    assert refused.returncode == 2 and "interactive terminal" in refused.stderr
    assert not (project_dir / ".deploy").exists()
    controller, terminal = os.openpty()  # a person's terminal
    try:
        allowed = subprocess.run(
            [sys.executable, "-m", "deploy_mcp", *args], cwd=project_dir, stdin=terminal, capture_output=True, text=True
        )
    finally:
        os.close(controller)
        os.close(terminal)
    assert allowed.returncode == 0, allowed.stderr
    assert "CHG-1" in allowed.stdout and "Ana" in allowed.stdout
    app = App.load(project_dir / "deploy.toml")
    assert app.ledger().find_approval("CHG-1", "web", "production").approved_by == "Ana"
    app.close()


def test_history_keeps_every_id_whole_in_an_80_column_terminal(project_dir: Path) -> None:
    """Every other command takes an id from this table: cut to `deploy-2026-1…` it cannot be pasted."""
    from rich.console import Console

    from deploy_mcp.core.records import Status
    from deploy_mcp.server.render import history_table

    app = App.load(project_dir / "deploy.toml")
    ledger = app.ledger()
    good = ledger.create(service="web", version="2.0.0", environment="production", strategy="canary")
    ledger.update(good.id, status=Status.SUCCEEDED)
    bad = ledger.create(service="web", version="3.0.0", environment="production", strategy="canary")
    ledger.update(bad.id, status=Status.ROLLED_BACK, reason="error rate 19.8% is above the critical 5.0% at step 5%")
    back = ledger.create(
        service="web", version="2.0.0", environment="production", strategy="rolling", rollback_of=bad.id
    )
    ledger.update(back.id, status=Status.SUCCEEDED, reason="rolled back automatically by the canary analysis")
    records = ledger.list(service="web")
    app.close()

    result = run("history", cwd=project_dir, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    shown = {80: result.stdout}
    for width in (50, 100, 160):
        with open(os.devnull, "w") as devnull:
            console = Console(width=width, record=True, file=devnull)
            console.print(history_table(records))
        shown[width] = console.export_text()
    for width, text in shown.items():
        lines = text.splitlines()
        assert "…" not in text and max(len(line) for line in lines) <= width, f"width {width}: cut\n{text}"
        for record in (good, bad, back):
            assert any(record.id in line.split() for line in lines), f"width {width}: {record.id} not whole\n{text}"
        for word in ("web", "production", "2.0.0", "3.0.0", "rolled_back", "succeeded", "19.8%", f"reverts {bad.id}"):
            assert word in text, f"width {width}: {word!r} is missing\n{text}"

"""Issue 9 item 5: lost or garbled state never leaves processes that nothing can manage, nor restarts history.

``rm -rf .deploy`` while a deployment runs, a garbled state file, a truncated ledger: each through the CLI, as a
person (or an agent with a shell) would meet it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from hostile_project import TIMEOUT, cli, spy_project
from local_fixtures import processes_in, wait_until_gone

from deploy_mcp.targets.local.loadgen import BackgroundLoad

__all__ = ["spy_project"]  # the fixture, imported so pytest finds it

STATE_FILE = Path(".deploy/local/spy--staging.json")


def deploy(project: Path, version: str) -> subprocess.CompletedProcess[str]:
    port = (project / "port").read_text()
    with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=50, concurrency=2):
        return cli("deploy", "spy", version, "--environment", "staging", cwd=project)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_rm_rf_deploy_mid_deploy_leaves_nothing_unmanaged(spy_project: Path) -> None:
    port = (spy_project / "port").read_text()
    with BackgroundLoad(f"http://127.0.0.1:{port}/", rate=50, concurrency=2):
        running = subprocess.Popen(
            [sys.executable, "-m", "deploy_mcp", "deploy", "spy", "1.0.0", "--environment", "staging"],
            cwd=spy_project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + TIMEOUT
        while not (spy_project / STATE_FILE).exists() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        shutil.rmtree(spy_project / ".deploy")  # the supervisor and its instance are up; their state is gone
        stdout, stderr = running.communicate(timeout=TIMEOUT)
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert processes_in(spy_project), "the service kept running"

    status = cli("local", "status", cwd=spy_project)
    no_traceback(status)
    assert status.returncode == 0 and "spy/staging  router" in status.stdout, status.stdout  # adopted, not lost

    again = deploy(spy_project, "2.0.0")  # the router's port is the same supervisor's: no "port already in use"
    no_traceback(again)
    assert again.returncode == 0, again.stdout + again.stderr

    shutil.rmtree(spy_project / ".deploy")
    stopped = cli("local", "stop", "spy", cwd=spy_project)
    no_traceback(stopped)
    assert stopped.returncode == 0 and "Stopped spy/staging" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not wait_until_gone(spy_project), "local stop left processes running"


def test_a_garbled_state_file_is_an_error_naming_it_and_local_stop_still_stops(spy_project: Path) -> None:
    first = deploy(spy_project, "1.0.0")
    assert first.returncode == 0, first.stdout + first.stderr
    (spy_project / STATE_FILE).write_bytes(b'{"format": 1, "supervisor": {"pid": ')  # cut off mid-write

    status = cli("local", "status", cwd=spy_project)
    no_traceback(status)
    assert "Nothing runs" not in status.stdout
    assert str(STATE_FILE.name) in status.stdout and "garbled" in status.stdout, status.stdout

    refused = cli("deploy", "spy", "2.0.0", "--environment", "staging", cwd=spy_project)
    no_traceback(refused)
    assert refused.returncode != 0
    assert STATE_FILE.name in refused.stdout + refused.stderr and "deploy-mcp local stop spy" in refused.stderr

    stopped = cli("local", "stop", "spy", cwd=spy_project)
    no_traceback(stopped)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not wait_until_gone(spy_project), "local stop left processes running"
    assert not (spy_project / STATE_FILE).exists()


def test_a_zero_byte_ledger_is_refused_unless_the_folder_is_new(spy_project: Path, tmp_path_factory) -> None:
    first = deploy(spy_project, "1.0.0")
    assert first.returncode == 0, first.stdout + first.stderr
    ledger = spy_project / ".deploy" / "ledger.db"
    for leftover in ledger.parent.glob("ledger.db-*"):
        leftover.unlink()
    ledger.write_bytes(b"")  # truncated: opening it would restart ids and history at 001

    refused = cli("history", cwd=spy_project)
    no_traceback(refused)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert str(ledger) in refused.stderr and "empty (0 bytes)" in refused.stderr, refused.stderr
    assert ledger.stat().st_size == 0  # nothing changed

    fresh = tmp_path_factory.mktemp("fresh")
    (fresh / "deploy.toml").write_text((spy_project / "deploy.toml").read_text(), encoding="utf-8")
    (fresh / ".deploy").mkdir()
    (fresh / ".deploy" / "ledger.db").write_bytes(b"")  # a new folder: the ledger was being created
    accepted = cli("history", cwd=fresh)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

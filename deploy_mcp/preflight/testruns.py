"""The result of the project's test command, recorded per commit so a passing suite is not run again.

A test suite can take minutes, and preflight runs before every deploy (and the agent may call it first too).
What matters is whether the tests passed on the code being released, so a result is recorded under the commit it
ran on, in ``.deploy/test-results/<commit>.json``, and reused while the commit and the command are the same.
CI may write the same file (same fields) after its own run, and preflight will take its word.

A result is recorded only for a clean working tree: with uncommitted changes the commit does not say what was
tested, so the command runs every time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from deploy_mcp.core.masking import mask_command, redact_output
from deploy_mcp.core.private import private_folder, private_state_dir

RESULTS_FOLDER = "test-results"
OUTPUT_TAIL_CHARS = 1500


class TestRun(BaseModel):
    """One run of the test command. ``exit_code`` is None when it could not start or was stopped."""

    __test__ = False  # not a pytest test class, whatever its name says
    model_config = ConfigDict(extra="ignore")

    command: list[str]
    commit: str | None = None
    passed: bool
    exit_code: int | None = None
    seconds: float = 0.0
    finished_at: datetime
    output_tail: str = ""
    problem: str | None = None


def recorded(state_dir: Path, commit: str, command: list[str]) -> TestRun | None:
    """The recorded run of ``command`` on ``commit``, or None (none, unreadable, or another command)."""
    path = state_dir / RESULTS_FOLDER / f"{commit}.json"
    try:
        run = TestRun.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None
    return run if run.command == command else None


def latest(state_dir: Path, command: list[str]) -> TestRun | None:
    """The newest recorded run of ``command`` on any commit: what a read-only session reports, since it runs
    nothing. None when no run of that command was ever recorded."""
    folder = state_dir / RESULTS_FOLDER
    runs: list[TestRun] = []
    try:
        paths = list(folder.glob("*.json"))
    except OSError:
        return None
    for path in paths:
        try:
            run = TestRun.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            continue
        if run.command == command:
            runs.append(run)
    return max(runs, key=lambda run: run.finished_at, default=None)


def record(state_dir: Path, run: TestRun) -> Path | None:
    """Keep ``run`` for its commit; a state folder that cannot be written only costs a rerun next time."""
    if run.commit is None:
        return None
    folder = state_dir / RESULTS_FOLDER
    path = folder / f"{run.commit}.json"
    try:
        private_folder(private_state_dir(state_dir) / RESULTS_FOLDER)  # output may hold secrets: 0700
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        return None
    return path


def run_tests(command: list[str], cwd: Path, timeout: float, commit: str | None) -> TestRun:
    """Run the test command as configured ({python} is the interpreter running deploy-mcp); never raises."""
    argv = [part.replace("{python}", sys.executable) for part in command]
    started = time.monotonic()

    def done(passed: bool, exit_code: int | None, output: str, problem: str | None = None) -> TestRun:
        return TestRun(
            command=command,
            commit=commit,
            passed=passed,
            exit_code=exit_code,
            seconds=round(time.monotonic() - started, 2),
            finished_at=datetime.now(UTC),
            output_tail=output[-OUTPUT_TAIL_CHARS:],
            problem=problem,
        )

    try:
        # A session of its own, so a timeout stops the whole suite (pytest workers, servers it started).
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        return done(False, None, "", f"{argv[0]!r} was not found (is it installed, and on PATH?), or {cwd} is missing")
    except PermissionError:
        return done(False, None, "", f"{argv[0]!r} is not executable")
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return done(False, None, output or "", f"it did not finish within {timeout:g} s and was stopped")
    return done(process.returncode == 0, process.returncode, output or "")


def describe(
    run: TestRun, *, reused: bool, unrecorded: str = "uncommitted changes", secrets: Iterable[str] = ()
) -> str:
    """One sentence for the evidence: what ran, on what, and how it ended (``unrecorded``: why a run without a
    commit was not recorded). Commands are masked and output redacted (``secrets``: the service's env values)."""
    what = " ".join(mask_command(run.command) or [])
    on = f" on commit {run.commit[:12]}" if run.commit else f" on the working tree (not recorded: {unrecorded})"
    when = f"recorded {run.finished_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if reused else f"ran in {run.seconds:g} s"
    if run.problem:
        return f"`{what}`{on} could not give a result: {run.problem}"
    verdict = "passed" if run.passed else f"failed (exit code {run.exit_code})"
    text = f"`{what}`{on} {verdict}, {when}"
    if not run.passed and run.output_tail.strip():
        tail = "\n".join(run.output_tail.strip().splitlines()[-15:])
        text += ". Last output:\n" + redact_output(tail, secrets)
    return text

"""Running squawk, the PostgreSQL migration linter, as the binary its PyPI wheel (squawk-cli) installs.

The binary sits beside the Python interpreter of the environment it was installed into, which need not be on
PATH (an MCP client often starts the server with a bare PATH), so that place is tried first. squawk runs in the
project root, where it finds the project's own ``.squawk.toml`` if there is one, and reports JSON with 0-based
lines; it exits 1 when it found something, which is not a failure here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy_mcp.errors import UserError

INSTALL_HINT = "pip install 'deploy-mcp[migrations]' (the squawk-cli wheel)"
TIMEOUT_SECONDS = 60.0


class SquawkError(UserError):
    """squawk could not run or its answer could not be read; the message says what it printed."""


@dataclass(frozen=True)
class SquawkIssue:
    file: str  # as squawk reports it: the argument it was given
    line: int  # 1-based
    rule: str
    level: str
    message: str
    help: str | None


def find_squawk() -> Path | None:
    """The squawk binary of this Python environment, else the first one on PATH."""
    name = "squawk.exe" if os.name == "nt" else "squawk"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("squawk")
    return Path(found) if found else None


def squawk_version(binary: Path) -> str:
    """ "2.70.0" from ``squawk --version`` ("squawk 2.70.0")."""
    output = _run([str(binary), "--version"], cwd=None, stdin=None).stdout.strip()
    return output.split()[-1] if output else "unknown"


def lint_files(binary: Path, files: list[str], cwd: Path) -> list[SquawkIssue]:
    """squawk over whole files, in one process; ``files`` are given as squawk should report them."""
    if not files:
        return []
    return _issues(_run([str(binary), "--reporter", "json", *files], cwd=cwd, stdin=None), files[0])


def lint_text(binary: Path, sql: str, report_as: str, cwd: Path) -> list[SquawkIssue]:
    """squawk over SQL given on stdin (one step of a single-file migration), reported as ``report_as``."""
    completed = _run([str(binary), "--reporter", "json", "--stdin-filepath", report_as], cwd=cwd, stdin=sql)
    return _issues(completed, report_as)


def _run(args: list[str], cwd: Path | None, stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        completed = subprocess.run(
            args,
            cwd=cwd,
            input=stdin if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise SquawkError(f"squawk is not installed where it was found ({args[0]}); {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise SquawkError(f"squawk did not finish within {TIMEOUT_SECONDS:g} s; lint fewer files at once") from None
    if completed.returncode not in (0, 1):
        detail = (completed.stderr or completed.stdout).strip()[-800:]
        raise SquawkError(f"squawk failed (exit {completed.returncode}): {detail or 'no output'}")
    return completed


def _issues(completed: subprocess.CompletedProcess[str], first_file: str) -> list[SquawkIssue]:
    try:
        raw = json.loads(completed.stdout or "[]")
    except ValueError:
        detail = (completed.stderr or completed.stdout).strip()[-800:]
        raise SquawkError(f"squawk's report on {first_file} is not JSON: {detail}") from None
    return [
        SquawkIssue(
            file=str(item.get("file", first_file)),
            line=int(item.get("line", 0)) + 1,
            rule=str(item.get("rule_name", "unknown")),
            level=str(item.get("level", "Warning")),
            message=str(item.get("message", "")).strip(),
            help=item.get("help"),
        )
        for item in raw
    ]

"""What the local platform keeps under .deploy/local: one state file per service and environment.

The supervisor rewrites its file after every change (atomically, so a reader never sees half of it). The file is
how a restarted server finds a running supervisor again (its control port and token), and how it finds what a
supervisor left behind if the supervisor itself died. A PID alone is not proof of identity, since PIDs are
reused, so every PID is stored with its kernel start time and only a process with both matching counts as ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy_mcp.core.private import private_folder, private_state_dir
from deploy_mcp.core.target import ErrorCode, TargetError

FORMAT = 1
LOCAL_DIR = "local"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass(frozen=True)
class Paths:
    """Where one service and environment keep their files."""

    state_dir: Path
    service: str
    environment: str

    @property
    def folder(self) -> Path:
        return self.state_dir / LOCAL_DIR

    @property
    def stem(self) -> str:
        return f"{_slug(self.service)}--{_slug(self.environment)}"

    @property
    def state_file(self) -> Path:
        return self.folder / f"{self.stem}.json"

    @property
    def lock_file(self) -> Path:
        return self.folder / f"{self.stem}.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.folder / f"{self.stem}.log"

    @property
    def logs(self) -> Path:
        return self.folder / "logs" / self.stem

    def instance_log(self, instance_id: str) -> Path:
        return self.logs / f"{_slug(instance_id)}.log"


def ensure_folder(paths: Paths) -> None:
    """.deploy and .deploy/local, created (or tightened) 0700: state files hold control tokens, logs hold output."""
    private_state_dir(paths.state_dir)
    private_folder(paths.folder)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: int | None, ticks: int | None) -> bool:
    """Is this the very process we started (same PID, same start time), and not a zombie?"""
    if not pid:
        return False
    if Path("/proc").is_dir():
        current = start_ticks(pid)
        return current is not None and (ticks is None or current == ticks)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Is any process of this process group still running (zombies do not count)?"""
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = raw[raw.rindex(b")") + 2 :].split()
            if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_process(pid: int | None, ticks: int | None, sig: int = signal.SIGKILL) -> None:
    """Signal one process, but only if it is still the one we started."""
    if pid and alive(pid, ticks):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; for leftovers of a supervisor that died."""
    kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.05)
    kill_group(pgid, signal.SIGKILL)


def write_state(paths: Paths, data: dict[str, Any]) -> None:
    ensure_folder(paths)
    temporary = paths.state_file.with_suffix(f".tmp{os.getpid()}")
    payload = json.dumps({"format": FORMAT, **data}, indent=2, sort_keys=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the control token
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.replace(temporary, paths.state_file)


class StateFileError(TargetError):
    """A state file that exists but cannot be read: never taken for "nothing runs", which it may not mean."""

    def __init__(self, path: Path, why: str, service: str) -> None:
        super().__init__(
            f"the local platform's state file {path} {why}; what it described may still be running. "
            f"`deploy-mcp local stop {service}` finds those processes without it, stops them and removes the file",
            ErrorCode.UNAVAILABLE,
        )
        self.path = path


def read_state(paths: Paths) -> dict[str, Any] | None:
    """The state, or None when there is no file; a file that cannot be read raises StateFileError."""
    try:
        text = paths.state_file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(paths.state_file, f"cannot be read ({exc.strerror})", paths.service) from None
    except UnicodeDecodeError:
        raise StateFileError(paths.state_file, "is garbled (not UTF-8 text)", paths.service) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(paths.state_file, f"is garbled (not valid JSON: {exc.msg})", paths.service) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise StateFileError(
            paths.state_file,
            f"is not a state file of this deploy-mcp (format {found!r}, expected {FORMAT})",
            paths.service,
        )
    return data


def remove_state(paths: Paths) -> None:
    with contextlib.suppress(FileNotFoundError):
        paths.state_file.unlink()


def known(state_dir: Path) -> Iterator[tuple[str, str]]:
    """(service, environment) of every state file, in name order; a garbled one by its name (SERVICE--ENV.json)."""
    folder = state_dir / LOCAL_DIR
    if not folder.is_dir():
        return
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and "service" in data and "environment" in data:
            yield str(data["service"]), str(data["environment"])
        elif file.stem.count("--") == 1:
            service, environment = file.stem.split("--")
            yield service, environment


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """One process at a time may start or tear down a supervisor for a service and environment."""
    import fcntl

    ensure_folder(paths)
    with open(paths.lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""What a process of the local platform finds in its environment, and the marker that lets us find it again.

Why minimal: a deployed service runs the code being shipped, and deploy-mcp's own environment holds the keys to
everything (DEPLOY_MCP_TOKEN, cloud credentials, PGPASSWORD). An instance gets PATH, HOME, LANG and TZ, the
variables deploy.toml sets for it, the few the platform sets (PORT, VERSION, SERVICE), and only the names its
service lists in ``inherit_env``. The supervisor gets no more than that either: an instance runs as the same OS
user and could read its parent's /proc/PID/environ.

Why a marker: the state file is how the platform finds its processes, and a state file can be deleted (``rm -rf
.deploy``) or garbled while they run. Every supervisor and instance carries ``DEPLOY_MCP_LOCAL`` in its
environment (the state folder, service, environment and role, as JSON), which /proc shows to the same user, so
the platform can still find, adopt or stop them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

BASE_NAMES = ("PATH", "HOME", "LANG", "TZ")
"""What every instance gets from deploy-mcp's environment, when set there."""
MARKER = "DEPLOY_MCP_LOCAL"


class ProcessRole(StrEnum):
    """Which local process a marker names (not a person's role on a team server: server.identities.Role)."""

    SUPERVISOR = "supervisor"
    INSTANCE = "instance"


def inherited(names: list[str] | tuple[str, ...] = (), source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The base variables plus ``names`` (a service's inherit_env), from ``source`` (deploy-mcp's environment)."""
    source = os.environ if source is None else source
    return {name: source[name] for name in (*BASE_NAMES, *names) if name in source}


def marker(state_dir: Path, service: str, environment: str, role: ProcessRole) -> str:
    return json.dumps(
        {"state_dir": str(Path(state_dir).resolve()), "service": service, "environment": environment, "role": role},
        sort_keys=True,
    )


def supervisor_environment(state_dir: Path, service: str, environment: str) -> dict[str, str]:
    """The supervisor imports deploy_mcp, so PYTHONPATH comes along when deploy-mcp runs from a source tree."""
    base = inherited(("PYTHONPATH",) if os.environ.get("PYTHONPATH") else ())
    return {**base, "PYTHONUNBUFFERED": "1", MARKER: marker(state_dir, service, environment, ProcessRole.SUPERVISOR)}


def instance_environment(
    base: Mapping[str, str],
    release_env: Mapping[str, str],
    *,
    port: int,
    version: str,
    service: str,
    owner: str,
) -> dict[str, str]:
    """deploy.toml's env wins over what is inherited; the platform's own variables win over both."""
    return {
        **base,
        "PYTHONUNBUFFERED": "1",
        **release_env,
        "PORT": str(port),
        "VERSION": version,
        "SERVICE": service,
        MARKER: owner,
    }


@dataclass(frozen=True)
class Found:
    """A process of ours that /proc shows, whatever the state file says."""

    pid: int
    ticks: int | None
    state_dir: str
    service: str
    environment: str
    role: ProcessRole


def _read_marker(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's process
        return None
    prefix = MARKER.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            try:
                data = json.loads(item[len(prefix) :])
            except (ValueError, UnicodeDecodeError):
                return None
            return data if isinstance(data, dict) else None
    return None


def _owned_by(entry: os.DirEntry[str], uid: int) -> bool:
    """Only our own user's processes can be ours (and only theirs have an environ we may read)."""
    try:
        return entry.stat(follow_symlinks=False).st_uid == uid
    except OSError:
        return False


def find(state_dir: Path, service: str | None = None, environment: str | None = None) -> Iterator[Found]:
    """Live processes (not zombies) carrying the marker of this state folder, optionally of one service/env."""
    from deploy_mcp.targets.local.state import start_ticks

    if not sys.platform.startswith("linux"):
        return
    wanted = str(Path(state_dir).resolve())
    own = os.getpid()
    uid = os.getuid()
    with os.scandir("/proc") as entries:
        pids = [int(e.name) for e in entries if e.name.isdigit() and _owned_by(e, uid) and int(e.name) != own]
    for pid in pids:
        data = _read_marker(pid)
        if not data or data.get("state_dir") != wanted:
            continue
        if service is not None and data.get("service") != service:
            continue
        if environment is not None and data.get("environment") != environment:
            continue
        ticks = start_ticks(pid)
        if ticks is None:
            continue
        try:
            role = ProcessRole(data.get("role", ""))
        except ValueError:
            continue
        yield Found(pid, ticks, wanted, str(data["service"]), str(data["environment"]), role)

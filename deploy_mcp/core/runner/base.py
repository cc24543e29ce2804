"""What every part of the runner shares: its error, its collaborators, and small helpers.

The runner is the one place where a plan meets a platform, so its collaborators are passed in, never imported:
core never imports a concrete platform or metric source (the data flows tool -> runner -> targets + signals ->
ledger), and tests hand it the real local platform.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_mcp.config.schema import Environment, Service
from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.core.analysis import MetricSource
    from deploy_mcp.core.platform import Platform
    from deploy_mcp.core.records import DeploymentRecord
    from deploy_mcp.ledger import Ledger

log = logging.getLogger("deploy_mcp.runner")


ENV_LEASE = "DEPLOY_MCP_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 30.0


def lease_seconds() -> float:
    """How long a deployment's lock outlives a silent driver (DEPLOY_MCP_LEASE_SECONDS, default 30 s): the time a
    server replica waits before taking over the deployment of one that died. Short in tests, longer on a flaky
    network."""
    raw = os.environ.get(ENV_LEASE, "").strip()
    if not raw:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UserError(f"{ENV_LEASE}: {raw!r} is not a number of seconds above 0; unset it for the default 30")
    return value


class RunnerError(UserError):
    """The runner refused a request (a deployment already running, an unknown id, nothing to roll back to...)."""


def default_holder() -> str:
    """A lock holder name unique to this process: readable in a refusal, never reused by a restarted process."""
    return f"pid {os.getpid()} on {socket.gethostname()} ({uuid.uuid4().hex[:8]})"


_HOLDER = re.compile(r"pid (\d+) on (.+) \([0-9a-f]{8}\)")


def holder_is_gone(holder: str) -> bool:
    """True only when ``holder`` (a `default_holder` name) is a process on this machine that has ended.

    A lease outlives a killed process by up to its length (30 s): a server restarted after a crash would report
    the deployment as running, and refuse to resume or roll it back, for that long. On the same machine the pid
    settles it at once. Anything unsure is left to the lease: another machine, a holder named otherwise, or a
    live pid (perhaps reused by another program, which only means waiting for the lease as before).
    """
    match = _HOLDER.fullmatch(holder)
    if match is None or match.group(2) != socket.gethostname():
        return False
    return not _process_alive(int(match.group(1)))


def _process_alive(pid: int) -> bool:
    """A zombie counts as gone: a killed server stays one until the process that started it reaps it."""
    if Path("/proc/self").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")
    try:  # no /proc here: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Context:
    """The runner's collaborators, shared by every deployment it drives."""

    project: Project
    ledger: Ledger
    platforms: Callable[[str], Platform]
    metrics: Callable[[str, str], MetricSource]
    holder: str
    lease_seconds: float
    ready_timeout: float
    drain_timeout: float

    def service(self, name: str) -> Service:
        services = self.project.config.services
        if name not in services:
            known = ", ".join(sorted(services)) or "none"
            raise RunnerError(f"service {name!r} is not in deploy.toml (known: {known})")
        return services[name]

    def environment(self, service: str, name: str) -> Environment:
        svc = self.service(service)
        if name not in svc.environments:
            known = ", ".join(sorted(svc.environments)) or "none"
            raise RunnerError(f"service {service!r} has no environment {name!r} in deploy.toml (known: {known})")
        return svc.environments[name]

    def full_size(self, service: str, environment: str) -> int:
        """How many instances a version runs with once it serves everything."""
        return self.environment(service, environment).replicas or self.service(service).replicas


def notify(callback: Callable[[DeploymentRecord, str], None] | None, record: DeploymentRecord, message: str) -> None:
    """Progress goes to a client that may be gone; its failure must never stop a deployment."""
    if callback is None:
        return
    try:
        callback(record, message)
    except Exception:
        log.exception("progress callback failed for %s", record.id)

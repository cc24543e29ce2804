"""A pod as the runner sees it: its version, its phase, its restarts, and whether it is in a crash loop.

The kubelet's view is read from the pod's status (Ready condition, container state and last termination), so
the driver reports what ``kubectl get pods`` shows: CrashLoopBackOff with its restart count and exit code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deploy_mcp.core.target import InstancePhase, InstanceState
from deploy_mcp.targets.kubernetes import names

Obj = dict[str, Any]
CRASH_LOOP_RESTARTS = 3
"""Restarts in CrashLoopBackOff that make a crash loop, as three exits make one on the local platform."""


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_version(pod: Obj) -> str:
    meta = pod["metadata"]
    return (meta.get("annotations") or {}).get(names.VERSION_ANNOTATION) or (meta.get("labels") or {}).get(
        names.VERSION, "?"
    )


def pod_state(pod: Obj) -> InstanceState:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    container = containers[0] if containers else {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    waiting = (container.get("state") or {}).get("waiting") or {}
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    if pod["metadata"].get("deletionTimestamp"):
        phase = InstancePhase.DRAINING
    elif ready:
        phase = InstancePhase.READY
    elif waiting.get("reason") in ("CrashLoopBackOff", "RunContainerError", "ErrImagePull", "ImagePullBackOff"):
        phase = InstancePhase.CRASHED
    elif container.get("started") or (container.get("state") or {}).get("running"):
        phase = InstancePhase.UNREADY if container.get("restartCount") else InstancePhase.STARTING
    else:
        phase = InstancePhase.STARTING
    parts: list[str] = []
    if waiting.get("reason") and waiting.get("reason") != "ContainerCreating":
        parts.append(f"{waiting['reason']}: {waiting.get('message', '')}".strip(": "))
    if terminated and terminated.get("exitCode") not in (None, 0) and not ready:
        # also between two attempts, while the container runs again: the last failure is what matters
        last = f"last exit code {terminated.get('exitCode')}"
        if terminated.get("message"):
            last += f", last output: {terminated['message']}"
        parts.append(last)
    problem = "; ".join(parts) or None
    return InstanceState(
        id=pod["metadata"]["name"],
        version=pod_version(pod),
        phase=phase,
        restarts=int(container.get("restartCount") or 0),
        started_at=_parse_time(status.get("startTime")),
        last_exit_code=terminated.get("exitCode"),
        last_error=problem,
    )


def crash_looping(instance: InstanceState) -> bool:
    """Restarted three times after failing and not ready: a crash loop, whether the kubelet is backing off right
    now (CrashLoopBackOff) or has just started the container once more."""
    failed = instance.last_exit_code not in (None, 0)
    return instance.restarts >= CRASH_LOOP_RESTARTS and failed and instance.phase is not InstancePhase.READY

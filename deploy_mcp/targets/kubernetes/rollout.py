"""kubectl's rollout semantics over the Python client: ``rollout status`` to wait, ``rollout undo`` to go back.

Both copy kubectl (staging/src/k8s.io/kubectl/pkg/polymorphichelpers) rather than inventing our own reading of
a Deployment, so what deploy-mcp reports is what ``kubectl rollout status`` would print on the same cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deploy_mcp.core.target import ErrorCode, TargetError

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class Progress(StrEnum):
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class RolloutStatus:
    progress: Progress
    message: str


def rollout_status(deployment: Obj) -> RolloutStatus:
    """kubectl's DeploymentStatusViewer: generation first, then the deadline, then the three counters."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {}) or {}
    name = meta["name"]
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutStatus(Progress.WAITING, "Waiting for deployment spec update to be observed...")
    for condition in status.get("conditions", []) or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(Progress.FAILED, f'deployment "{name}" exceeded its progress deadline')
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < replicas:
        return RolloutStatus(
            Progress.WAITING,
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas have been '
            "updated...",
        )
    if total > updated:
        return RolloutStatus(
            Progress.WAITING,
            f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending '
            "termination...",
        )
    if available < updated:
        return RolloutStatus(
            Progress.WAITING,
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are '
            "available...",
        )
    return RolloutStatus(Progress.DONE, f'deployment "{name}" successfully rolled out')


def _revision(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _owned(replicaset: Obj, deployment: Obj) -> bool:
    uid = deployment["metadata"]["uid"]
    return any(
        ref.get("uid") == uid and ref.get("controller") for ref in replicaset["metadata"].get("ownerReferences", [])
    )


def _without_hash(template: Obj) -> Obj:
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    return clean


def undo_patch(deployment: Obj, replicasets: list[Obj], to_revision: int = 0) -> tuple[list[Obj] | None, int]:
    """kubectl's DeploymentRollbacker: the JSON patch that puts an earlier ReplicaSet's template back.

    Returns (None, revision) when the chosen revision's template is the current one (kubectl: "skipped
    rollback"). Raises for a paused Deployment or a revision that does not exist.
    """
    name = deployment["metadata"]["name"]
    if deployment.get("spec", {}).get("paused"):
        raise TargetError(
            f"deployment {name} is paused; resume it (kubectl rollout resume) before rolling back",
            ErrorCode.UNAVAILABLE,
        )
    owned = [rs for rs in replicasets if _owned(rs, deployment)]
    if to_revision == 0:
        revisions = sorted({_revision(rs) for rs in owned}, reverse=True)
        if len(revisions) < 2:
            raise TargetError(f"deployment {name} has no previous revision to roll back to", ErrorCode.UNKNOWN_VERSION)
        to_revision = revisions[1]
    target = next((rs for rs in owned if _revision(rs) == to_revision), None)
    if target is None:
        raise TargetError(f"deployment {name} has no revision {to_revision}", ErrorCode.UNKNOWN_VERSION)
    template = _without_hash(target["spec"]["template"])
    if template == deployment["spec"]["template"]:
        return None, to_revision
    kept = {
        k: v
        for k, v in deployment["metadata"].get("annotations", {}).items()
        if k.startswith("deployment.kubernetes.io/") or k == LAST_APPLIED
    }
    copied = {
        k: v
        for k, v in target["metadata"].get("annotations", {}).items()
        if not k.startswith("deployment.kubernetes.io/") and k != LAST_APPLIED
    }
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": {**copied, **kept}},
    ]
    return patch, to_revision

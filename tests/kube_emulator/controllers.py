"""The Deployment and ReplicaSet controllers and the garbage collector, as kube-controller-manager runs them.

The rolling update follows pkg/controller/deployment (rolling.go, sync.go, progress.go): scale the new
ReplicaSet up to replicas + maxSurge, clean up unhealthy old pods, then scale old ReplicaSets down while at least
replicas - maxUnavailable pods stay available; Recreate scales everything old to 0 and waits until no old pod
is left. Status and conditions (Progressing with ProgressDeadlineExceeded, Available) are computed the same way,
so ``kubectl rollout status`` and the driver read the same truth as on a real cluster.
"""

from __future__ import annotations

import contextlib
import copy
import math
import secrets
from datetime import UTC, datetime
from typing import Any

from kube_emulator.store import NotFound, Obj, Store, now_iso

REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
SKIPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/")
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(number: int) -> str:
    return "".join(SAFE_ALPHABET[int(c, 16) % len(SAFE_ALPHABET)] for c in f"{number:x}")


def template_hash(template: Obj, collisions: int = 0) -> str:
    """FNV-32a over the template, rendered in the safe alphabet (no vowels), as the controller names ReplicaSets."""
    import json

    data = json.dumps(template, sort_keys=True).encode() + str(collisions).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(value)


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def without_hash(template: Obj) -> Obj:
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    return clean


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    if spec.get("strategy", {}).get("type") != "RollingUpdate":
        return 0, 0
    rolling = spec["strategy"].get("rollingUpdate", {})
    surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences", []))


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def revision_of(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def pod_available(pod: Obj, min_ready_seconds: int) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    condition = next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    if condition is None or condition["status"] != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = datetime.strptime(condition["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - since).total_seconds() >= min_ready_seconds


def pod_ready(pod: Obj) -> bool:
    return pod_available(pod, 0)


class Controllers:
    """One reconcile pass over every object; the cluster calls ``sync`` a few times a second."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.deployments = store.kind("Deployment")
        self.replicasets = store.kind("ReplicaSet")
        self.pods = store.kind("Pod")

    def sync(self) -> None:
        with self.store.lock:
            self._collect_garbage()
            for deployment in self.store.list(self.deployments):
                self._sync_deployment(deployment)
            for replicaset in self.store.list(self.replicasets):
                self._sync_replicaset(replicaset)

    # -- garbage collector ---------------------------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        uids = {
            obj["metadata"]["uid"]
            for kind in (self.deployments, self.replicasets)
            for obj in self.store.objects[kind].values()
        }
        for kind in (self.replicasets, self.pods):
            for obj in self.store.list(kind):
                refs = obj["metadata"].get("ownerReferences", [])
                if refs and not any(ref.get("uid") in uids for ref in refs):
                    self.delete(kind.kind, obj["metadata"]["namespace"], obj["metadata"]["name"])

    def delete(self, kind_name: str, namespace: str, name: str) -> Obj:
        """Pods terminate gracefully (the kubelet finishes the job); other objects go at once."""
        kind = self.store.kind(kind_name)
        if kind_name != "Pod":
            return self.store.delete(kind, namespace, name)

        def mark(pod: Obj) -> None:
            if not pod["metadata"].get("deletionTimestamp"):
                pod["metadata"]["deletionTimestamp"] = now_iso()
                pod["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get("terminationGracePeriodSeconds", 30)

        return self.store.update(kind, namespace, name, mark)

    # -- ReplicaSet controller -----------------------------------------------------------------------------------

    def _pods_of(self, replicaset: Obj) -> list[Obj]:
        namespace = replicaset["metadata"]["namespace"]
        return [p for p in self.store.list(self.pods, namespace) if owned_by(p, replicaset)]

    def _sync_replicaset(self, replicaset: Obj) -> None:
        meta, spec = replicaset["metadata"], replicaset["spec"]
        pods = self._pods_of(replicaset)
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        wanted = spec.get("replicas", 0)
        if len(active) < wanted:
            for _ in range(wanted - len(active)):
                template = copy.deepcopy(spec["template"])
                pod = {
                    "metadata": {
                        "name": f"{meta['name']}-{random_suffix()}",
                        "labels": template.get("metadata", {}).get("labels", {}),
                        "annotations": template.get("metadata", {}).get("annotations", {}),
                        "ownerReferences": [owner_reference(replicaset)],
                    },
                    "spec": template["spec"],
                    "status": {"phase": "Pending", "qosClass": "BestEffort"},
                }
                active.append(self.store.create(self.pods, meta["namespace"], pod))
        elif len(active) > wanted:
            # not ready first, then the youngest, as the controller ranks pods to delete
            ranked = sorted(active, key=lambda p: (pod_ready(p), p["metadata"]["creationTimestamp"]), reverse=False)
            ranked = sorted(ranked, key=lambda p: pod_ready(p))
            for pod in ranked[: len(active) - wanted]:
                self.delete("Pod", meta["namespace"], pod["metadata"]["name"])
                active.remove(pod)
        min_ready = spec.get("minReadySeconds", 0)
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready)),
            "observedGeneration": meta.get("generation", 1),
        }
        if status != replicaset.get("status"):

            def write(obj: Obj) -> None:
                obj["status"] = status

            self.store.update(self.replicasets, meta["namespace"], meta["name"], write, status=True)

    # -- Deployment controller -----------------------------------------------------------------------------------

    def _replicasets_of(self, deployment: Obj) -> list[Obj]:
        namespace = deployment["metadata"]["namespace"]
        return [rs for rs in self.store.list(self.replicasets, namespace) if owned_by(rs, deployment)]

    def _scale(self, replicaset: Obj, replicas: int, deployment: Obj) -> None:
        surge, _ = surge_and_unavailable(deployment)
        desired = deployment["spec"].get("replicas", 1)

        def change(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"]["annotations"][DESIRED] = str(desired)
            obj["metadata"]["annotations"][MAX_REPLICAS] = str(desired + surge)

        meta = replicaset["metadata"]
        replicaset.update(self.store.update(self.replicasets, meta["namespace"], meta["name"], change))

    def _sync_deployment(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace = meta["namespace"]
        owned = self._replicasets_of(deployment)
        template = spec.get("template", {})
        new = next((rs for rs in owned if without_hash(rs["spec"]["template"]) == template), None)
        old = [rs for rs in owned if rs is not new]
        max_old_revision = max((revision_of(rs) for rs in old), default=0)
        created = False
        if spec.get("paused"):
            self._write_status(deployment, owned, new, created=False)
            return
        if new is None:
            new = self._create_replicaset(deployment, max_old_revision + 1, 0)
            created = True
        elif revision_of(new) <= max_old_revision:
            revision = str(max_old_revision + 1)
            annotations = self._copied_annotations(deployment)

            def bump(obj: Obj) -> None:
                obj["metadata"]["annotations"].update(annotations)
                obj["metadata"]["annotations"][REVISION] = revision

            new = self.store.update(self.replicasets, namespace, new["metadata"]["name"], bump)
        if meta.get("annotations", {}).get(REVISION) != str(revision_of(new)):
            revision = str(revision_of(new))

            def mark(obj: Obj) -> None:
                obj["metadata"]["annotations"][REVISION] = revision

            deployment = self.store.update(self.deployments, namespace, meta["name"], mark)
        replicas = spec.get("replicas", 1)
        if spec.get("strategy", {}).get("type") == "Recreate":
            self._recreate(deployment, new, old, replicas)
        else:
            self._rolling(deployment, new, old, replicas)
        self._clean_history(deployment, [rs for rs in old if rs is not new])
        self._write_status(deployment, [new, *old], new, created=created)

    def _copied_annotations(self, deployment: Obj) -> dict[str, str]:
        return {
            k: v
            for k, v in deployment["metadata"].get("annotations", {}).items()
            if not any(k.startswith(skip) for skip in SKIPPED_ANNOTATIONS)
        }

    def _create_replicaset(self, deployment: Obj, revision: int, replicas: int) -> Obj:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = copy.deepcopy(spec["template"])
        digest = template_hash(template, deployment.get("status", {}).get("collisionCount", 0))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec.get("selector", {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        surge, _ = surge_and_unavailable(deployment)
        annotations = self._copied_annotations(deployment)
        annotations.update(
            {
                REVISION: str(revision),
                DESIRED: str(spec.get("replicas", 1)),
                MAX_REPLICAS: str(spec.get("replicas", 1) + surge),
            }
        )
        replicaset = {
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
            "status": {"replicas": 0},
        }
        return self.store.create(self.replicasets, meta["namespace"], replicaset)

    def _recreate(self, deployment: Obj, new: Obj, old: list[Obj], replicas: int) -> None:
        for replicaset in old:
            if replicaset["spec"].get("replicas", 0) > 0:
                self._scale(replicaset, 0, deployment)
        if any(self._pods_of(rs) for rs in old):
            return  # no new pod while an old one still runs
        if new["spec"].get("replicas") != replicas:
            self._scale(new, replicas, deployment)

    def _rolling(self, deployment: Obj, new: Obj, old: list[Obj], replicas: int) -> None:
        surge, unavailable = surge_and_unavailable(deployment)
        everything = [new, *old]
        new_replicas = new["spec"].get("replicas", 0)
        if new_replicas > replicas:
            self._scale(new, replicas, deployment)
        elif new_replicas < replicas:
            current = sum(rs["spec"].get("replicas", 0) for rs in everything)
            room = replicas + surge - current
            if room > 0:
                self._scale(new, min(replicas, new_replicas + room), deployment)
        # scale old ReplicaSets down, oldest first
        old_sorted = sorted((rs for rs in old if rs["spec"].get("replicas", 0) > 0), key=revision_of)
        if not old_sorted:
            return
        all_pods = sum(rs["spec"].get("replicas", 0) for rs in everything)
        min_available = replicas - unavailable
        new_unavailable = new["spec"].get("replicas", 0) - new.get("status", {}).get("availableReplicas", 0)
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        for replicaset in old_sorted:  # unhealthy old pods go first: they serve nobody
            unhealthy = replicaset["spec"]["replicas"] - replicaset.get("status", {}).get("availableReplicas", 0)
            cut = min(max(0, unhealthy), budget)
            if cut > 0:
                self._scale(replicaset, replicaset["spec"]["replicas"] - cut, deployment)
                budget -= cut
        available = sum(rs.get("status", {}).get("availableReplicas", 0) for rs in everything)
        budget = available - min_available
        for replicaset in old_sorted:
            if budget <= 0:
                break
            cut = min(replicaset["spec"].get("replicas", 0), budget)
            if cut > 0:
                self._scale(replicaset, replicaset["spec"]["replicas"] - cut, deployment)
                budget -= cut

    def _clean_history(self, deployment: Obj, old: list[Obj]) -> None:
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        idle = sorted(
            (rs for rs in old if rs["spec"].get("replicas", 0) == 0 and rs.get("status", {}).get("replicas", 0) == 0),
            key=revision_of,
        )
        for replicaset in idle[: max(0, len(idle) - limit)]:
            with contextlib.suppress(NotFound):
                self.store.delete(self.replicasets, replicaset["metadata"]["namespace"], replicaset["metadata"]["name"])

    # -- status --------------------------------------------------------------------------------------------------

    def _write_status(self, deployment: Obj, owned: list[Obj], new: Obj | None, *, created: bool) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, name = meta["namespace"], meta["name"]
        fresh = [self.store.find(self.replicasets, namespace, rs["metadata"]["name"]) for rs in owned if rs]
        sets = [rs for rs in fresh if rs is not None]
        new_name = new["metadata"]["name"] if new is not None else None
        new_now = next((rs for rs in sets if rs["metadata"]["name"] == new_name), None)
        replicas = spec.get("replicas", 1)
        _, unavailable = surge_and_unavailable(deployment)
        total_spec = sum(rs["spec"].get("replicas", 0) for rs in sets)
        status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": sum(rs.get("status", {}).get("replicas", 0) for rs in sets),
            "updatedReplicas": (new_now or {}).get("status", {}).get("replicas", 0),
            "readyReplicas": sum(rs.get("status", {}).get("readyReplicas", 0) for rs in sets),
            "availableReplicas": sum(rs.get("status", {}).get("availableReplicas", 0) for rs in sets),
        }
        status["unavailableReplicas"] = max(0, total_spec - status["availableReplicas"])
        for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas", "replicas"):
            if status[key] == 0:
                status.pop(key)
        previous = deployment.get("status", {}) or {}
        conditions = {c["type"]: c for c in copy.deepcopy(previous.get("conditions", []))}
        stamp = now_iso()
        available_now = status.get("availableReplicas", 0) >= replicas - unavailable
        self._condition(
            conditions,
            "Available",
            "True" if available_now else "False",
            "MinimumReplicasAvailable" if available_now else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available_now
            else "Deployment does not have minimum availability.",
            stamp,
        )
        rs_name = (new_now or {}).get("metadata", {}).get("name", "")
        complete = (
            status.get("updatedReplicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        )
        counters = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
        progressed = created or any(status.get(k, 0) != previous.get(k, 0) for k in counters)
        progressing = conditions.get("Progressing")
        if spec.get("paused"):
            self._condition(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", stamp)
        elif complete:
            self._condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                stamp,
                touch=progressing is None or progressing.get("reason") != "NewReplicaSetAvailable",
            )
        elif created:
            self._condition(
                conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', stamp
            )
        elif progressed or progressing is None or progressing.get("reason") in ("NewReplicaSetAvailable", None):
            self._condition(
                conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', stamp
            )
        elif progressing.get("status") == "True":
            last = datetime.strptime(progressing["lastUpdateTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            deadline = spec.get("progressDeadlineSeconds", 600)
            if (datetime.now(UTC) - last).total_seconds() > deadline:
                self._condition(
                    conditions,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                    stamp,
                )
        status["conditions"] = [conditions[t] for t in ("Available", "Progressing") if t in conditions]
        if "collisionCount" in previous:
            status["collisionCount"] = previous["collisionCount"]
        if status != previous:

            def write(obj: Obj) -> None:
                obj["status"] = status

            self.store.update(self.deployments, namespace, name, write, status=True)

    @staticmethod
    def _condition(
        conditions: dict[str, Obj],
        type_: str,
        status: str,
        reason: str,
        message: str,
        stamp: str,
        *,
        touch: bool = True,
    ) -> None:
        old = conditions.get(type_)
        if old is not None and old["status"] == status and old["reason"] == reason and not touch:
            return
        if old is not None and old["status"] == status and old["reason"] == reason and old["message"] == message:
            if type_ == "Progressing" and touch and reason != "NewReplicaSetAvailable":
                old["lastUpdateTime"] = stamp
            return
        transition = old["lastTransitionTime"] if old is not None and old["status"] == status else stamp
        conditions[type_] = {
            "type": type_,
            "status": status,
            "lastUpdateTime": stamp,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }

"""Server-side printing: the Table answers ``kubectl get`` asks for, with the columns a real cluster prints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _column(name: str, type_: str = "string", priority: int = 0) -> Obj:
    return {
        "name": name,
        "type": type_,
        "format": "name" if name == "Name" else "",
        "description": "",
        "priority": priority,
    }


def _images(template: Obj) -> tuple[str, str]:
    containers = template.get("spec", {}).get("containers", []) or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(selector: Obj | None) -> str:
    labels = (selector or {}).get("matchLabels", selector or {}) or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "<none>"


def _deployment(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    names, images = _images(spec.get("template", {}))
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(obj["metadata"].get("creationTimestamp")),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _replicaset(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    names, images = _images(spec.get("template", {}))
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(obj["metadata"].get("creationTimestamp")),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _pod(obj: Obj) -> list[Any]:
    status = obj.get("status", {})
    containers = status.get("containerStatuses", []) or []
    ready = sum(1 for c in containers if c.get("ready"))
    total = len(obj.get("spec", {}).get("containers", []) or [])
    reason = status.get("phase", "Pending")
    for container in containers:
        waiting = container.get("state", {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(c.get("restartCount", 0) for c in containers)
    return [
        obj["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts,
        age(obj["metadata"].get("creationTimestamp")),
        status.get("podIP", "<none>"),
        "emulator",
        "<none>",
        "<none>",
    ]


def _service(obj: Obj) -> list[Any]:
    spec = obj.get("spec", {})
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []) or [])
    return [
        obj["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        age(obj["metadata"].get("creationTimestamp")),
        ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>",
    ]


def _generic(obj: Obj) -> list[Any]:
    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


COLUMNS: dict[str, tuple[list[Obj], Any]] = {
    "Deployment": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _deployment,
    ),
    "ReplicaSet": (
        [
            _column("Name"),
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _column("Age"),
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _replicaset,
    ),
    "Pod": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod,
    ),
    "Service": (
        [
            _column("Name"),
            _column("Type"),
            _column("Cluster-IP"),
            _column("External-IP"),
            _column("Port(s)"),
            _column("Age"),
            _column("Selector", priority=1),
        ],
        _service,
    ),
}


def table(kind: str, items: list[Obj], resource_version: str) -> Obj:
    columns, row = COLUMNS.get(kind, ([_column("Name"), _column("Age")], _generic))
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [
            {
                "cells": row(item),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
            for item in items
        ],
    }

"""The API server's defaulting: what a real cluster fills in when an object is created or replaced.

kubectl and the official client both compare objects that went through defaulting (``rollout undo`` skips a
revision whose template equals the current one), so the emulator must fill the same fields the same way.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

Obj = dict[str, Any]

_cluster_ips = (str(ipaddress.IPv4Address("10.96.0.10") + n) for n in itertools.count())


def pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers", []) or []:
        image = container.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
        container.setdefault("imagePullPolicy", "Always" if tag == "latest" else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports", []) or []:
            port.setdefault("protocol", "TCP")
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if probe:
                probe.setdefault("timeoutSeconds", 1)
                probe.setdefault("periodSeconds", 10)
                probe.setdefault("successThreshold", 1)
                probe.setdefault("failureThreshold", 3)
                if "httpGet" in probe:
                    probe["httpGet"].setdefault("scheme", "HTTP")


def template(obj: Obj) -> None:
    tmpl = obj.setdefault("spec", {}).setdefault("template", {})
    tmpl.setdefault("metadata", {})
    pod_spec(tmpl.setdefault("spec", {}))


def deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template(obj)
    obj.setdefault("status", {})


def replicaset(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    template(obj)
    obj.setdefault("status", {"replicas": 0})


def pod(obj: Obj) -> None:
    pod_spec(obj.setdefault("spec", {}))
    obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})


def service(obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if old is not None and old.get("spec", {}).get("clusterIP"):
        spec["clusterIP"] = old["spec"]["clusterIP"]
    elif not spec.get("clusterIP"):
        spec["clusterIP"] = next(_cluster_ips)
    spec["clusterIPs"] = [spec["clusterIP"]]
    for port in spec.get("ports", []) or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {"loadBalancer": {}})


def strip_nulls(node: Any) -> Any:
    """Typed decoding drops null fields (``creationTimestamp: null`` in a template kubectl sends back) and
    ``omitempty`` drops empty lists, so ``env: []`` and no env are the same template, as on a real server."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if v is None or v == []]:
            del node[key]
        for value in node.values():
            strip_nulls(value)
    elif isinstance(node, list):
        for value in node:
            strip_nulls(value)
    return node


def apply(kind: str, obj: Obj, old: Obj | None = None) -> None:
    strip_nulls(obj)
    if kind == "Deployment":
        deployment(obj)
    elif kind == "ReplicaSet":
        replicaset(obj)
    elif kind == "Pod":
        pod(obj)
    elif kind == "Service":
        service(obj, old)

"""The objects deploy-mcp writes: a Deployment per version (or one rolled natively), Services, an HTTPRoute.

A Deployment comes from ``image = "repo:{version}"`` or from the user's own manifest (``manifest =
"k8s/web.yaml"``): from a manifest we set the name, namespace, labels, selector, replicas and the image of the
first container, and add environment variables, a readiness probe (only when none is declared) and the flags
volume; every other field is kept as the user wrote it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import ErrorCode, Release, TargetError
from deploy_mcp.targets.kubernetes import names

if TYPE_CHECKING:
    from deploy_mcp.config.schema import Environment, KubernetesTarget, Service

Obj = dict[str, Any]
FLAGS_MOUNT = "/etc/deploy-mcp/flags"
FLAGS_KEY = "flags.json"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def _load_manifest(root: Path, service_name: str, path: str) -> Obj:
    import yaml

    file = (root / path).resolve()
    field = f"services.{service_name}.manifest"
    try:
        documents = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
    except OSError as exc:
        raise TargetError(f"{field}: cannot read {path}: {exc.strerror or exc}", ErrorCode.START_FAILED) from None
    except yaml.YAMLError as exc:
        raise TargetError(f"{field}: {path} is not valid YAML: {exc}", ErrorCode.START_FAILED) from None
    deployment = next((d for d in documents if isinstance(d, dict) and d.get("kind") == "Deployment"), None)
    if deployment is None:
        raise TargetError(f"{field}: {path} holds no Deployment (kind: Deployment)", ErrorCode.START_FAILED)
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    if not containers:
        raise TargetError(f"{field}: the Deployment in {path} has no containers", ErrorCode.START_FAILED)
    return copy.deepcopy(deployment)


def image_of(service_name: str, service: Service, release: Release) -> str | None:
    """The release's image: per-version override, else the service's template with {version} filled in."""
    if release.image:
        return release.image
    if service.image:
        return service.image.replace("{version}", release.version)
    return None


def deployment_body(
    *,
    root: Path,
    service_name: str,
    service: Service,
    environment_name: str,
    settings: KubernetesTarget,
    release: Release,
    replicas: int,
    name: str,
    selector: dict[str, str],
    strategy: Obj,
    deployment_id: str | None,
) -> Obj:
    version_labels = names.version_labels(service_name, environment_name, release.version, deployment_id)
    if service.manifest:
        body = _load_manifest(root, service_name, service.manifest)
    else:
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}, "spec": {"template": {"spec": {}}}}
        body["spec"]["template"]["spec"]["containers"] = [{"name": names.dns_label(service_name)}]
    image = image_of(service_name, service, release)
    if image is None and not service.manifest:
        raise TargetError(
            f'services.{service_name}.image: required for target = "kubernetes"; set image = "registry/{service_name}:'
            '{version}" or manifest = "k8s/deployment.yaml"',
            ErrorCode.NO_COMMAND,
        )
    meta = body.setdefault("metadata", {})
    meta["name"] = name
    meta.pop("namespace", None)
    meta["labels"] = {**(meta.get("labels") or {}), **version_labels}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        names.VERSION_ANNOTATION: release.version,
        CHANGE_CAUSE: f"deploy-mcp: {service_name} {release.version}"
        + (f" ({deployment_id})" if deployment_id else ""),
    }
    spec = body.setdefault("spec", {})
    spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": dict(selector)}
    spec["strategy"] = strategy
    spec.setdefault("progressDeadlineSeconds", int(settings.progress_deadline))
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **version_labels}
    template_meta["annotations"] = {
        **(template_meta.get("annotations") or {}),
        names.VERSION_ANNOTATION: release.version,
    }
    pod = template.setdefault("spec", {})
    container = pod["containers"][0]
    if image is not None:
        container["image"] = image
    env = [e for e in container.get("env") or [] if e.get("name") not in release.env]
    env += [{"name": key, "value": value} for key, value in release.env.items()]
    if service.flag is not None:
        env = [e for e in env if e.get("name") not in ("FLAGS_FILE", "FLAG_NAME")]
        env += [
            {"name": "FLAGS_FILE", "value": f"{FLAGS_MOUNT}/{FLAGS_KEY}"},
            {"name": "FLAG_NAME", "value": service.flag.name},
        ]
        volume_name = "deploy-mcp-flags"
        volumes = [v for v in pod.get("volumes") or [] if v.get("name") != volume_name]
        volumes.append(
            {
                "name": volume_name,
                "configMap": {"name": names.flags_name(service_name, environment_name), "optional": True},
            }
        )
        pod["volumes"] = volumes
        mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") != volume_name]
        mounts.append({"name": volume_name, "mountPath": FLAGS_MOUNT, "readOnly": True})
        container["volumeMounts"] = mounts
    if env:
        container["env"] = env
    if not container.get("ports"):
        container["ports"] = [{"name": "http", "containerPort": settings.container_port}]
    if not container.get("readinessProbe"):
        container["readinessProbe"] = {
            "httpGet": {"path": service.health, "port": container["ports"][0]["containerPort"]},
            "periodSeconds": 2,
            "failureThreshold": 2,
        }
    return body


def rolling_strategy(environment: Environment) -> Obj:
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": environment.max_surge, "maxUnavailable": environment.max_unavailable},
    }


def service_body(
    name: str, labels: dict[str, str], selector: dict[str, str], settings: KubernetesTarget, role: str
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {**labels, names.ROLE: role}},
        "spec": {
            "selector": dict(selector),
            "ports": [{"name": "http", "port": settings.service_port, "targetPort": settings.container_port}],
        },
    }


def route_body(name: str, labels: dict[str, str], settings: KubernetesTarget, backends: dict[str, int]) -> Obj:
    if settings.gateway:
        namespace, _, gateway = settings.gateway.rpartition("/")
        parent: Obj = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}
        if namespace:
            parent["namespace"] = namespace
    else:
        parent = {"group": "", "kind": "Service", "name": name, "port": settings.service_port}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": labels},
        "spec": {"parentRefs": [parent], "rules": [{"backendRefs": backend_refs(backends, settings)}]},
    }


def backend_refs(backends: dict[str, int], settings: KubernetesTarget) -> list[Obj]:
    return [
        {"group": "", "kind": "Service", "name": service, "port": settings.service_port, "weight": weight}
        for service, weight in backends.items()
    ]

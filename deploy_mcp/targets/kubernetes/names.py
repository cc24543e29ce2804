"""Object names and labels: what deploy-mcp creates is named predictably and carries labels that say who owns it.

``kubectl get all -l app.kubernetes.io/managed-by=deploy-mcp`` lists everything deploy-mcp made; the service,
environment, version and deployment id labels narrow it down. Kubernetes names are RFC 1123 labels (lower case,
digits and '-', at most 63 characters) and label values are at most 63 characters of [A-Za-z0-9_.-]; versions
such as ``1.2.0+build.5`` or long service names are folded into that alphabet with a short hash so two different
inputs never share a name.
"""

from __future__ import annotations

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "deploy-mcp"
NAME = "app.kubernetes.io/name"
VERSION = "app.kubernetes.io/version"
ENVIRONMENT = "deploy-mcp.dev/environment"
DEPLOYMENT_ID = "deploy-mcp.dev/deployment-id"
ROLE = "deploy-mcp.dev/role"
VERSION_ANNOTATION = "deploy-mcp.dev/version"
NATIVE_ANNOTATION = "deploy-mcp.dev/native-rollout"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def dns_label(text: str, limit: int = 63) -> str:
    """An RFC 1123 label for any text; a hash suffix keeps folded or shortened names unique.

    Dots become dashes without a hash (``1.2.0`` -> ``1-2-0``), so names stay readable for the usual versions.
    """
    folded = _NOT_DNS.sub("-", text.lower()).strip("-") or "x"
    if folded == text.replace(".", "-") and len(folded) <= limit:
        return folded
    return f"{folded[: limit - 7].rstrip('-')}-{_digest(text)}"


def label_value(text: str) -> str:
    folded = _NOT_LABEL.sub("-", text).strip("-_.")
    if folded == text and len(folded) <= 63:
        return folded
    return f"{folded[:56].rstrip('-_.')}-{_digest(text)}"


def base_name(service: str, environment: str) -> str:
    """The stable Service, the HTTPRoute and the natively rolled Deployment: ``web-production``."""
    name = dns_label(f"{service}-{environment}", 50)
    return name if name[0].isalpha() else f"s-{name}"[:50]


def version_name(service: str, environment: str, version: str) -> str:
    """One version's Deployment and preview Service: ``web-production-v1-2-0``."""
    return dns_label(f"{base_name(service, environment)}-v{version}", 63)


def flags_name(service: str, environment: str) -> str:
    return f"{base_name(service, environment)}-flags"


def owner_labels(service: str, environment: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, NAME: label_value(service), ENVIRONMENT: label_value(environment)}


def version_labels(service: str, environment: str, version: str, deployment_id: str | None = None) -> dict[str, str]:
    labels = {**owner_labels(service, environment), VERSION: label_value(version)}
    if deployment_id:
        labels[DEPLOYMENT_ID] = label_value(deployment_id)
    return labels


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())

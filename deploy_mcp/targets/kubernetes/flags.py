"""Feature flags where the pods read them: a ConfigMap holding a flagd file, mounted into every version.

Each Deployment deploy-mcp writes for a service with ``[services.NAME.flag]`` mounts the ConfigMap
``<service>-<environment>-flags`` at /etc/deploy-mcp/flags and points FLAGS_FILE at it; the kubelet refreshes a
mounted ConfigMap within its sync period (about a minute on a real cluster), and a flagd-aware service re-reads
the file when it changes. Other flags in the same file are kept.
"""

from __future__ import annotations

import json
from typing import Any

from deploy_mcp.core.target import ErrorCode, TargetError
from deploy_mcp.targets.kubernetes import manifests, names
from deploy_mcp.targets.kubernetes.api import Kube


def flag_definition(percentage: int) -> dict[str, Any]:
    """flagd: ENABLED with on/off variants; 0% and 100% are the default variant, between them a fractional rule."""
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if percentage >= 100 else "off",
    }
    if 0 < percentage < 100:
        flag["targeting"] = {"fractional": [["on", percentage], ["off", 100 - percentage]]}
    return flag


class ConfigMapFlags:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def _document(self, namespace: str, name: str) -> tuple[dict[str, Any], bool]:
        config_map = self.kube.config_map(namespace, name)
        if config_map is None:
            return {}, False
        raw = (config_map.get("data") or {}).get(manifests.FLAGS_KEY) or "{}"
        try:
            document = json.loads(raw)
        except ValueError:
            document = {}
        return (document if isinstance(document, dict) else {}), True

    def set_flag(self, service: str, environment: str, flag: str, percentage: int) -> str:
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            message = f"flag {flag}: percentage must be a whole number from 0 to 100, got {percentage!r}"
            raise TargetError(message, ErrorCode.INVALID_WEIGHTS)
        namespace = self.kube.connection.namespace(service, environment)
        name = names.flags_name(service, environment)
        document, exists = self._document(namespace, name)
        document.setdefault("$schema", "https://flagd.dev/schema/v0/flags.json")
        document.setdefault("flags", {})[flag] = flag_definition(percentage)
        data = {manifests.FLAGS_KEY: json.dumps(document, indent=2) + "\n"}
        if exists:
            self.kube.patch_config_map(namespace, name, {"data": data})
        else:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": names.owner_labels(service, environment)},
                "data": data,
            }
            self.kube.create_config_map(namespace, body)
        return f"configmap/{name} in namespace {namespace} (key {manifests.FLAGS_KEY})"

    def get_flag(self, service: str, environment: str, flag: str) -> int | None:
        namespace = self.kube.connection.namespace(service, environment)
        document, _ = self._document(namespace, names.flags_name(service, environment))
        definition = (document.get("flags") or {}).get(flag)
        if not isinstance(definition, dict) or definition.get("state", "ENABLED") != "ENABLED":
            return None
        fractional = (definition.get("targeting") or {}).get("fractional")
        if isinstance(fractional, list):
            return next((int(weight) for variant, weight in fractional if variant == "on"), 0)
        return 100 if definition.get("defaultVariant") == "on" else 0

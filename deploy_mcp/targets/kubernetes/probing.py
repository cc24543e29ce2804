"""Health and smoke through the API server's service proxy: nothing inside the cluster has to be exposed.

``http_client`` returns an httpx client whose base URL is
``<api server>/api/v1/namespaces/<ns>/services/<name>:http/proxy``, carrying the kubeconfig's credentials, so
``client.get("/health")`` reaches the stable Service as users do (version None) or one version's own Service
(its preview). ``health`` probes every pod of a version through the pods proxy and reports what each answered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from deploy_mcp.core.target import InstanceHealth
from deploy_mcp.targets.kubernetes import names
from deploy_mcp.targets.kubernetes.api import Kube
from deploy_mcp.targets.kubernetes.pods import pod_version

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project

HEALTHY_WORDS = frozenset({"ok", "healthy", "pass", "up"})


class ServiceProxyProber:
    def __init__(self, project: Project, kube: Kube) -> None:
        self.project = project
        self.kube = kube

    def _client(self, path: str, timeout: float) -> httpx.Client:
        connection = self.kube.connection
        return httpx.Client(
            base_url=f"{connection.host}{path}",
            headers=connection.auth_headers(),
            timeout=timeout,
            **connection.tls(),
        )

    def http_client(self, service: str, environment: str, version: str | None = None) -> httpx.Client:
        namespace = self.kube.connection.namespace(service, environment)
        name = (
            names.base_name(service, environment)
            if version is None
            else names.version_name(service, environment, version)
        )
        return self._client(f"/api/v1/namespaces/{namespace}/services/{name}:http/proxy", 10.0)

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        namespace = self.kube.connection.namespace(service, environment)
        labels = names.owner_labels(service, environment)
        if version is not None:
            labels[names.VERSION] = names.label_value(version)
        config = self.project.config.services.get(service)
        path = config.health if config else "/health"
        port = self.kube.connection.settings.container_port
        results: list[InstanceHealth] = []
        for pod in self.kube.pods(namespace, names.selector(labels)):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            name = pod["metadata"]["name"]
            url = f"/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy{path}"
            started = time.perf_counter()
            try:
                with self._client("", 5.0) as client:
                    answer = client.get(url)
            except httpx.HTTPError as exc:
                detail = f"no answer through the API server: {exc}"
                results.append(
                    InstanceHealth(instance=name, version=pod_version(pod), healthy=False, url=url, detail=detail)
                )
                continue
            latency = round((time.perf_counter() - started) * 1000, 2)
            word = None
            try:
                document = answer.json()
                if isinstance(document, dict) and isinstance(document.get("status"), str):
                    word = document["status"]
            except ValueError:
                pass
            healthy = answer.is_success and (word is None or word.lower() in HEALTHY_WORDS)
            detail = f"{path} answered {answer.status_code}" + ("" if healthy else f": {answer.text[:200].strip()}")
            results.append(
                InstanceHealth(
                    instance=name,
                    version=pod_version(pod),
                    healthy=healthy,
                    url=url,
                    status_code=answer.status_code,
                    status=word,
                    detail=detail,
                    latency_ms=latency,
                )
            )
        return results

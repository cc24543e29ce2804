"""The few API calls the driver makes, as plain dictionaries, with the API server's errors turned into ours.

The typed models of the official client are skipped on purpose (``_preload_content=False``): the driver reads
a handful of fields, and whole-object deserialisation costs more than the call itself on a busy loop.
"""

from __future__ import annotations

import json
from typing import Any

from deploy_mcp.core.target import ErrorCode, TargetError
from deploy_mcp.targets.kubernetes.connection import Connection, error_message

Obj = dict[str, Any]
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class Kube:
    def __init__(self, connection: Connection) -> None:
        from kubernetes import client

        self.connection = connection
        self.apps = client.AppsV1Api(connection.api)
        self.core = client.CoreV1Api(connection.api)
        self.custom = client.CustomObjectsApi(connection.api)

    def _call(self, what: str, method: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if args and method.__name__.startswith("patch_"):
            # the client would label a dict body as a JSON patch (the first type it lists): say what it is
            kwargs["_content_type"] = JSON_PATCH if isinstance(args[-1], list) else MERGE_PATCH
        try:
            answer = method(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            code = ErrorCode.UNAVAILABLE
            hint = ""
            if exc.status == 403:
                hint = "; the kubeconfig user or service account lacks this permission (see the RBAC Role in the docs)"
            raise TargetError(f"kubernetes: {what} failed ({exc.status}): {error_message(exc)}{hint}", code) from None
        except (HTTPError, OSError) as exc:
            raise TargetError(
                f"kubernetes: {what} failed: the API server at {self.connection.host} did not answer ({exc})",
                ErrorCode.UNAVAILABLE,
            ) from None
        data = answer.data
        return json.loads(data) if data else {}

    # -- reads ---------------------------------------------------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self._call(
            f"reading deployment {namespace}/{name}",
            self.apps.read_namespaced_deployment,
            name,
            namespace,
            missing_ok=True,
        )

    def next_deployment(self, namespace: str, name: str, resource_version: str, timeout: int = 1) -> Obj | None:
        """The Deployment after its next change (a watch from ``resource_version``), or as it is after ``timeout``
        seconds without one; None once it is deleted."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        watcher = watch.Watch()
        try:
            for event in watcher.stream(
                self.apps.list_namespaced_deployment,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                timeout_seconds=timeout,
                _request_timeout=timeout + 5,
            ):
                if event["type"] == "DELETED":
                    return None
                if event["type"] in ("ADDED", "MODIFIED"):
                    return event["raw_object"]
        except (ApiException, HTTPError, OSError, ValueError):
            pass  # a watch that broke (or expired: 410 Gone) costs one plain read
        finally:
            watcher.stop()
        return self.deployment(namespace, name)

    def deployments(self, namespace: str, selector: str) -> list[Obj]:
        answer = self._call(
            f"listing deployments in {namespace}",
            self.apps.list_namespaced_deployment,
            namespace,
            label_selector=selector,
        )
        return answer.get("items", [])

    def replicasets(self, namespace: str, selector: str) -> list[Obj]:
        answer = self._call(
            f"listing replicasets in {namespace}",
            self.apps.list_namespaced_replica_set,
            namespace,
            label_selector=selector,
        )
        return answer.get("items", [])

    def pods(self, namespace: str, selector: str) -> list[Obj]:
        answer = self._call(
            f"listing pods in {namespace}", self.core.list_namespaced_pod, namespace, label_selector=selector
        )
        return answer.get("items", [])

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._call(
            f"reading service {namespace}/{name}", self.core.read_namespaced_service, name, namespace, missing_ok=True
        )

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self._call(
            f"reading configmap {namespace}/{name}",
            self.core.read_namespaced_config_map,
            name,
            namespace,
            missing_ok=True,
        )

    def route(self, namespace: str, name: str) -> Obj | None:
        return self._call(
            f"reading httproute {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            "httproutes",
            name,
            missing_ok=True,
        )

    # -- writes --------------------------------------------------------------------------------------------------

    def create_deployment(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._call(
            f"creating deployment {namespace}/{name}", self.apps.create_namespaced_deployment, namespace, body
        )

    def patch_deployment(self, namespace: str, name: str, patch: Any) -> Obj:
        return self._call(
            f"updating deployment {namespace}/{name}", self.apps.patch_namespaced_deployment, name, namespace, patch
        )

    def json_patch_deployment(self, namespace: str, name: str, operations: list[Obj]) -> Obj:
        """A JSON patch, as kubectl rollout undo sends it (the client picks the content type from a list body)."""
        return self._call(
            f"updating deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            operations,
        )

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> Obj:
        return self._call(
            f"scaling deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
        )

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._call(
            f"deleting deployment {namespace}/{name}",
            self.apps.delete_namespaced_deployment,
            name,
            namespace,
            propagation_policy="Background",
            missing_ok=True,
        )

    def create_service(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._call(f"creating service {namespace}/{name}", self.core.create_namespaced_service, namespace, body)

    def patch_service(self, namespace: str, name: str, patch: Any) -> Obj:
        return self._call(
            f"updating service {namespace}/{name}", self.core.patch_namespaced_service, name, namespace, patch
        )

    def delete_service(self, namespace: str, name: str) -> None:
        self._call(
            f"deleting service {namespace}/{name}",
            self.core.delete_namespaced_service,
            name,
            namespace,
            missing_ok=True,
        )

    def create_config_map(self, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._call(
            f"creating configmap {namespace}/{name}", self.core.create_namespaced_config_map, namespace, body
        )

    def patch_config_map(self, namespace: str, name: str, patch: Any) -> Obj:
        return self._call(
            f"updating configmap {namespace}/{name}", self.core.patch_namespaced_config_map, name, namespace, patch
        )

    def create_route(self, namespace: str, body: Obj) -> Obj:
        return self._call(
            f"creating httproute {namespace}/{body['metadata']['name']}",
            self.custom.create_namespaced_custom_object,
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            "httproutes",
            body,
        )

    def patch_route(self, namespace: str, name: str, patch: Any) -> Obj:
        return self._call(
            f"updating httproute {namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            "httproutes",
            name,
            patch,
        )

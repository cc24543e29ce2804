"""What runs: Deployments, one per version (canary, blue-green) or one rolled natively (rolling, recreate).

Both layouts are read the same way: pods carry the version label, so ``state`` groups them by version whichever
Deployment made them, and a canary after a native rolling release (or the reverse) just works. Waiting uses
kubectl's rollout-status semantics; a pod in CrashLoopBackOff that has restarted three times is a crash loop,
reported with its exit code and last output, without waiting for the progress deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import (
    START_ALLOWANCE_SECONDS,
    ErrorCode,
    InstanceState,
    Release,
    TargetError,
    TargetState,
    VersionState,
)
from deploy_mcp.targets.kubernetes import manifests, names
from deploy_mcp.targets.kubernetes.api import Kube
from deploy_mcp.targets.kubernetes.pods import crash_looping, pod_state, pod_version
from deploy_mcp.targets.kubernetes.rollout import Progress, rollout_status, undo_patch

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.targets.kubernetes.routing import Routing

Obj = dict[str, Any]
POLL_SECONDS = 0.1
CRASH_CHECK_SECONDS = 0.5


class NativeStrategy:
    ROLLING = "rolling"
    RECREATE = "recreate"


class KubernetesWorkload:
    """The Workload of the platform contract, plus ``rollout`` and ``undo`` for the Deployment's own strategies."""

    kind = "kubernetes"

    def __init__(self, project: Project, kube: Kube) -> None:
        self.project = project
        self.kube = kube
        self.routing: Routing | None = None  # set by create_platform: state() reports the router's weights

    def close(self) -> None:
        self.kube.connection.api.close()

    # -- helpers -------------------------------------------------------------------------------------------------

    def _namespace(self, service: str, environment: str) -> str:
        return self.kube.connection.namespace(service, environment)

    def _service_config(self, service: str) -> Any:
        config = self.project.config.services.get(service)
        if config is None:
            raise TargetError(f"service: {service!r} is not in deploy.toml", ErrorCode.UNKNOWN_SERVICE)
        return config

    def _environment_config(self, service: str, environment: str) -> Any:
        from deploy_mcp.config.schema import Environment

        return self._service_config(service).environments.get(environment) or Environment()

    def _deployments(self, namespace: str, service: str, environment: str) -> list[Obj]:
        return self.kube.deployments(namespace, names.selector(names.owner_labels(service, environment)))

    def _version_deployment(self, namespace: str, service: str, environment: str, version: str) -> Obj | None:
        """The Deployment that runs ``version`` now: its own, or the native one whose template is that version."""
        own = self.kube.deployment(namespace, names.version_name(service, environment, version))
        if own is not None:
            return own
        native = self.kube.deployment(namespace, names.base_name(service, environment))
        if native is not None and self._template_version(native) == version:
            return native
        return None

    @staticmethod
    def _template_version(deployment: Obj) -> str | None:
        template_meta = deployment["spec"]["template"].get("metadata") or {}
        return (template_meta.get("annotations") or {}).get(names.VERSION_ANNOTATION)

    @staticmethod
    def _is_native(deployment: Obj) -> bool:
        return (deployment["metadata"].get("annotations") or {}).get(names.NATIVE_ANNOTATION) == "true"

    # -- state ---------------------------------------------------------------------------------------------------

    def state(self, service: str, environment: str) -> TargetState:
        namespace = self._namespace(service, environment)
        deployments = self._deployments(namespace, service, environment)
        owner = names.selector(names.owner_labels(service, environment))
        pods = self.kube.pods(namespace, owner)
        versions: dict[str, VersionState] = {}
        problems: list[str] = []
        for deployment in deployments:
            status = deployment.get("status") or {}
            for condition in status.get("conditions") or []:
                if condition.get("reason") == "ProgressDeadlineExceeded":
                    problems.append(f"deployment {deployment['metadata']['name']}: {condition.get('message')}")
            if self._is_native(deployment):
                uid = deployment["metadata"]["uid"]
                for replicaset in self.kube.replicasets(namespace, owner):
                    if not any(r.get("uid") == uid for r in replicaset["metadata"].get("ownerReferences") or []):
                        continue
                    wanted = replicaset["spec"].get("replicas", 0)
                    running = (replicaset.get("status") or {}).get("replicas", 0)
                    if wanted == 0 and running == 0:
                        continue
                    version = self._template_version(replicaset) or "?"
                    entry = versions.setdefault(version, VersionState(version=version, replicas=0))
                    entry.replicas += wanted
                    entry.ready += (replicaset.get("status") or {}).get("readyReplicas", 0)
            else:
                version = (deployment["metadata"].get("annotations") or {}).get(names.VERSION_ANNOTATION, "?")
                entry = versions.setdefault(version, VersionState(version=version, replicas=0))
                entry.replicas += deployment["spec"].get("replicas", 0)
                entry.ready += status.get("readyReplicas", 0)
        for pod in pods:
            instance = pod_state(pod)
            entry = versions.setdefault(instance.version, VersionState(version=instance.version, replicas=0))
            entry.instances.append(instance)
            entry.restarts += instance.restarts
            if crash_looping(instance):
                entry.crash_loop = True
            if instance.last_error and not entry.problem:
                entry.problem = instance.last_error
        weights: dict[str, int] = {}
        if self.routing is not None and versions:
            try:
                weights = self.routing.read_weights(namespace, service, environment, versions)
            except TargetError as exc:
                problems.append(str(exc))
        for version, entry in versions.items():
            entry.weight = weights.get(version, 0)
            entry.endpoint = None
        return TargetState(
            service=service,
            environment=environment,
            kind=self.kind,
            running=bool(deployments),
            endpoint=f"{self.kube.connection.host}/api/v1/namespaces/{namespace}/services/"
            f"{names.base_name(service, environment)}:http/proxy"
            if deployments
            else None,
            problem="; ".join(problems) or None,
            versions=sorted(versions.values(), key=lambda v: v.version),
        )

    # -- per-version Deployments ---------------------------------------------------------------------------------

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        namespace = self._namespace(service, environment)
        if replicas < 1:
            raise TargetError(f"replicas must be at least 1, got {replicas}", ErrorCode.INVALID_WEIGHTS)
        name = names.version_name(service, environment, release.version)
        if self._version_deployment(namespace, service, environment, release.version) is not None:
            raise TargetError(
                f"{service}/{environment}: version {release.version} already runs (deployment {namespace}/{name}); "
                "scale it instead",
                ErrorCode.ALREADY_RUNNING,
            )
        config = self._service_config(service)
        env_config = self._environment_config(service, environment)
        labels = names.version_labels(service, environment, release.version, _deployment_id(release))
        body = manifests.deployment_body(
            root=self.project.root,
            service_name=service,
            service=config,
            environment_name=environment,
            settings=self.kube.connection.settings,
            release=release,
            replicas=replicas,
            name=name,
            selector={k: v for k, v in labels.items() if k != names.DEPLOYMENT_ID},
            strategy=manifests.rolling_strategy(env_config),
            deployment_id=_deployment_id(release),
        )
        if self.routing is not None:
            self.routing.prepare(namespace, service, environment, release.version)
        self.kube.create_deployment(namespace, body)
        try:
            self._wait(namespace, name, service, environment, release.version, replicas, timeout)
        except TargetError:
            self.kube.delete_deployment(namespace, name)
            if self.routing is not None:
                self.routing.forget(namespace, service, environment, release.version)
            self._wait_gone(namespace, service, environment, release.version, 0, 30.0)
            raise
        if self.routing is not None:
            self.routing.started(namespace, service, environment, release.version)

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        namespace = self._namespace(service, environment)
        if replicas < 0:
            raise TargetError(f"replicas cannot be negative, got {replicas}", ErrorCode.INVALID_WEIGHTS)
        deployment = self._version_deployment(namespace, service, environment, version)
        if deployment is None:
            raise TargetError(f"{service}/{environment} does not run version {version}", ErrorCode.UNKNOWN_VERSION)
        name = deployment["metadata"]["name"]
        self.kube.scale_deployment(namespace, name, replicas)
        self._wait(namespace, name, service, environment, version, replicas, timeout)
        # kubectl's rollout status is done before surplus pods are gone; a shrink here returns once they drained
        self._wait_gone(namespace, service, environment, version, replicas, timeout or START_ALLOWANCE_SECONDS)

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        namespace = self._namespace(service, environment)
        deployment = self._version_deployment(namespace, service, environment, version)
        if deployment is None:
            raise TargetError(f"{service}/{environment} does not run version {version}", ErrorCode.UNKNOWN_VERSION)
        if self.routing is not None:
            self.routing.before_stop(namespace, service, environment, version)
        self.kube.delete_deployment(namespace, deployment["metadata"]["name"])
        if self.routing is not None:
            self.routing.forget(namespace, service, environment, version)
        self._wait_gone(namespace, service, environment, version, 0, drain_timeout + 30)

    def _wait_gone(self, namespace: str, service: str, environment: str, version: str, keep: int, limit: float) -> None:
        """Until at most ``keep`` pods of the version exist, terminating ones included (they drain, then go)."""
        selector = names.selector(
            {**names.owner_labels(service, environment), names.VERSION: names.label_value(version)}
        )
        deadline = time.monotonic() + limit
        while len(self.kube.pods(namespace, selector)) > keep and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)

    # -- the Deployment's own strategies -------------------------------------------------------------------------

    def rollout(
        self,
        service: str,
        environment: str,
        release: Release,
        replicas: int,
        *,
        strategy: str = NativeStrategy.ROLLING,
        timeout: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> int:
        """One Deployment, its template set to this release; Kubernetes rolls (or recreates) the pods. Returns the
        revision. Waits with kubectl's rollout-status semantics; a crash loop or the deadline raises, and the
        caller decides whether to ``undo``."""
        namespace = self._namespace(service, environment)
        config = self._service_config(service)
        env_config = self._environment_config(service, environment)
        name = names.base_name(service, environment)
        spec_strategy = (
            {"type": "Recreate"} if strategy == NativeStrategy.RECREATE else manifests.rolling_strategy(env_config)
        )
        body = manifests.deployment_body(
            root=self.project.root,
            service_name=service,
            service=config,
            environment_name=environment,
            settings=self.kube.connection.settings,
            release=release,
            replicas=replicas,
            name=name,
            selector=names.owner_labels(service, environment),
            strategy=spec_strategy,
            deployment_id=_deployment_id(release),
        )
        body["metadata"]["annotations"][names.NATIVE_ANNOTATION] = "true"
        body["metadata"]["labels"].pop(names.VERSION, None)  # the Deployment spans versions; its pods carry one
        if self.routing is not None:
            self.routing.native(namespace, service, environment)
        deployments = self._deployments(namespace, service, environment)
        existing = next((d for d in deployments if d["metadata"]["name"] == name), None)
        had_others = any(d["metadata"]["name"] != name for d in deployments)
        if existing is None:
            created = self.kube.create_deployment(namespace, body)
            generation = created["metadata"].get("generation", 1)
        else:
            annotations = {**(existing["metadata"].get("annotations") or {}), **body["metadata"]["annotations"]}
            patch = [
                {"op": "replace", "path": "/spec/template", "value": body["spec"]["template"]},
                {"op": "replace", "path": "/spec/strategy", "value": spec_strategy},
                {"op": "replace", "path": "/spec/replicas", "value": replicas},
                {"op": "replace", "path": "/metadata/annotations", "value": annotations},
                {"op": "replace", "path": "/metadata/labels", "value": body["metadata"]["labels"]},
            ]
            generation = self.kube.json_patch_deployment(namespace, name, patch)["metadata"].get("generation", 1)
        latest = self._wait(
            namespace, name, service, environment, release.version, replicas, timeout, progress, generation
        )
        # versions still running in their own Deployments (an earlier canary) hand over to the native one
        for other in self._deployments(namespace, service, environment) if had_others else ():
            if other["metadata"]["name"] != name:
                self.kube.delete_deployment(namespace, other["metadata"]["name"])
        return int((latest["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))

    def undo(
        self,
        service: str,
        environment: str,
        *,
        to_revision: int = 0,
        timeout: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> str | None:
        """``kubectl rollout undo`` for the natively rolled Deployment; returns the version now running."""
        namespace = self._namespace(service, environment)
        name = names.base_name(service, environment)
        deployment = self.kube.deployment(namespace, name)
        if deployment is None:
            raise TargetError(
                f"{service}/{environment} has no natively rolled deployment to undo", ErrorCode.NOT_RUNNING
            )
        replicasets = self.kube.replicasets(namespace, names.selector(names.owner_labels(service, environment)))
        patch, _ = undo_patch(deployment, replicasets, to_revision)
        if patch is not None:
            deployment = self.kube.json_patch_deployment(namespace, name, patch)
        version = self._template_version(deployment) or "?"
        revision = (deployment["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        if progress is not None:
            progress(
                f"deployment {name} rolled back to {version}" + (f" (from revision {revision})" if revision else "")
            )
        replicas = deployment["spec"].get("replicas", 1)
        generation = deployment["metadata"].get("generation", 1)
        self._wait(namespace, name, service, environment, version, replicas, timeout, progress, generation)
        # the pods of the version undone drain and go before the rollback counts as done
        for pod in self.kube.pods(namespace, names.selector(names.owner_labels(service, environment))):
            other = pod_version(pod)
            if other != version:
                self._wait_gone(namespace, service, environment, other, 0, timeout or START_ALLOWANCE_SECONDS)
        return version

    # -- waiting -------------------------------------------------------------------------------------------------

    def _wait(
        self,
        namespace: str,
        name: str,
        service: str,
        environment: str,
        version: str,
        replicas: int,
        timeout: float | None,
        progress: Callable[[str], None] | None = None,
        generation: int = 0,
    ) -> Obj:
        """Until the Deployment is rolled out (kubectl's rules); returns it. Woken by a watch on the Deployment,
        so the end is seen as soon as the controller writes it; the pods are looked at twice a second for a
        crash loop, which a Deployment's status never shows."""
        limit = timeout or START_ALLOWANCE_SECONDS
        deadline = time.monotonic() + limit
        pods_selector = names.selector(
            {**names.owner_labels(service, environment), names.VERSION: names.label_value(version)}
        )
        last = ""
        next_pod_check = 0.0
        instances: list[InstanceState] = []
        deployment = self.kube.deployment(namespace, name)
        while True:
            if deployment is None:
                raise TargetError(
                    f"deployment {namespace}/{name} disappeared while waiting for it", ErrorCode.NOT_RUNNING
                )
            status = rollout_status(deployment)
            observed = (deployment.get("status") or {}).get("observedGeneration", 0)
            if status.message != last and progress is not None:
                progress(status.message)
            last = status.message
            if status.progress is Progress.DONE and observed >= generation:
                return deployment
            now = time.monotonic()
            if now >= next_pod_check or status.progress is Progress.FAILED or now >= deadline:
                next_pod_check = now + CRASH_CHECK_SECONDS
                instances = [pod_state(p) for p in self.kube.pods(namespace, pods_selector)]
                looping = [i for i in instances if crash_looping(i)]
                if looping:
                    worst = max(looping, key=lambda i: i.restarts)
                    raise TargetError(
                        f"{version} is in a crash loop: pod {worst.id} restarted {worst.restarts} times "
                        f"(CrashLoopBackOff); {worst.last_error or 'it exits'}",
                        ErrorCode.CRASH_LOOP,
                    )
            detail = next((i.last_error for i in instances if i.last_error), None)
            if status.progress is Progress.FAILED:
                raise TargetError(f"{status.message}" + (f": {detail}" if detail else ""), ErrorCode.HEALTH_TIMEOUT)
            if now >= deadline:
                ready = sum(1 for i in instances if i.ready)
                raise TargetError(
                    f"only {ready} of {replicas} pod(s) of {version} became ready within {limit:g} s "
                    f"({status.message})" + (f": {detail}" if detail else ""),
                    ErrorCode.HEALTH_TIMEOUT,
                )
            deployment = self.kube.next_deployment(namespace, name, deployment["metadata"]["resourceVersion"])


def _deployment_id(release: Release) -> str | None:
    return release.deployment_id

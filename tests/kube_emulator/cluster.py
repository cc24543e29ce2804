"""The emulated cluster: the store, the REST server, the controllers, a kubelet running pods as local processes,
and kube-proxy/Gateway routers that give each Service a real local port.

Pods run the local platform's ``Instance`` (process, readiness probe, restarts with back-off, crash-loop
detection), so restartCount, CrashLoopBackOff and readiness come from real processes. Each Service gets the local
platform's weighted ``Router`` on a free port: without an HTTPRoute it balances over the ready endpoints (each
version weighted by its ready pod count, exactly what kube-proxy does), and when a Gateway API HTTPRoute names the
Service as its parent (the GAMMA pattern), it splits requests by the route's backendRef weights. Routers expose
the RED metrics of each version on /metrics for Prometheus, labelled with the Service's
``app.kubernetes.io/name`` and ``deploy-mcp.dev/environment`` labels, as an ingress controller would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy_mcp.core.target import InstancePhase, Release
from deploy_mcp.targets.local.process import Instance, log_tail
from deploy_mcp.targets.local.router import Router, Upstream
from kube_emulator.api import ApiError, ApiServer
from kube_emulator.controllers import Controllers, pod_ready
from kube_emulator.store import Kind, NotFound, Obj, Store, match_labels

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
HELLO = [sys.executable, "-m", "examples.hello", "--port", "{port}"]
TICK = 0.1
VERSION_LABEL = "app.kubernetes.io/version"
NAME_LABEL = "app.kubernetes.io/name"
ENVIRONMENT_LABEL = "deploy-mcp.dev/environment"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Pod:
    """The kubelet's view of one pod: its container process and the router memberships it holds."""

    def __init__(self, namespace: str, name: str, instance: Instance, folder: Path) -> None:
        self.namespace = namespace
        self.name = name
        self.instance = instance
        self.folder = folder
        self.ready_since: str | None = None
        self.terminating = False
        self.started = _stamp()
        self.config_maps: dict[str, tuple[str, str]] = {}  # mount path -> (config map, host folder)


class ServiceRouter:
    """A Service's real port: the local platform's router fed with this Service's ready endpoints."""

    def __init__(self, router: Router, port: int) -> None:
        self.router = router
        self.port = port
        self.upstreams: dict[str, Upstream] = {}  # pod name -> upstream


class Cluster:
    """Start with ``Cluster().start()``; ``url`` is the API server, ``stop()`` ends every pod and router."""

    def __init__(
        self,
        images: dict[str, list[str]] | None = None,
        workdir: Path | None = None,
        service_ports: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.store = Store()
        self.controllers = Controllers(self.store)
        self.images = images or {}
        self.service_ports = dict(service_ports or {})  # (namespace, name) -> the port its router must take
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kube-emulator-"))
        self.pods: dict[tuple[str, str], Pod] = {}
        self.routers: dict[tuple[str, str], ServiceRouter] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="kube-emulator", daemon=True)
        self._kubelet_router = Router("kubelet", "kubelet")
        self.api: ApiServer | None = None
        self._api_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.health_interval = 0.5
        for namespace in ("default", "kube-system", "kube-public"):
            self.store.create(self.store.kind("Namespace"), "", {"metadata": {"name": namespace}, "spec": {}})

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.api is not None
        return f"http://127.0.0.1:{self.api.server_address[1]}"

    def start(self, port: int = 0) -> Cluster:
        self.api = ApiServer(self, port)
        self._api_thread = threading.Thread(target=self.api.serve_forever, name="kube-emulator-api", daemon=True)
        self._api_thread.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.api is not None:
            self.api.stopping.set()
            self.api.shutdown()
            self.api.server_close()
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            with contextlib.suppress(Exception):
                future.result(timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if self._own_workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._reconcile_forever())
        self.loop.run_forever()

    async def _shutdown(self) -> None:
        await asyncio.gather(*(pod.instance.stop(0.0, 2.0) for pod in self.pods.values()), return_exceptions=True)
        for service_router in self.routers.values():
            await service_router.router.close()

    async def _reconcile_forever(self) -> None:
        while not self._stopped.is_set():
            try:
                self.controllers.sync()
                self._kubelet()
                await self._sync_routers()
                self._sync_endpoints()
            except Exception:  # a controller bug must be seen, and must not stop the cluster
                log.exception("kube emulator: reconcile failed")
            await asyncio.sleep(TICK)

    # -- API helpers ---------------------------------------------------------------------------------------------

    def delete(self, kind: Kind, namespace: str, name: str) -> Obj:
        if kind.kind == "Namespace":
            raise ApiError(405, "MethodNotAllowed", "the emulator does not delete namespaces")
        return self.controllers.delete(kind.kind, namespace, name)

    def validate(self, kind: Kind, obj: Obj) -> None:
        """The checks of the real API server that a driver can trip over: names, label values, selectors."""
        meta = obj.get("metadata", {})
        name = meta.get("name") or meta.get("generateName") or ""
        title = f'{kind.kind}{"." + kind.group if kind.group else ""} "{name}" is invalid'
        if name and (len(name) > 253 or not all(_DNS_LABEL.match(p) for p in name.split("."))):
            raise ApiError(
                422, "Invalid", f"{title}: metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain"
            )
        labels = dict(meta.get("labels") or {})
        labels.update(obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {})
        for key, value in labels.items():
            if len(str(value)) > 63 or not _LABEL_VALUE.match(str(value)):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{title}: metadata.labels: Invalid value: {value!r}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    f"alphanumeric character (label {key})",
                )
        if kind.kind in ("Deployment", "ReplicaSet"):
            selector = obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}
            template_labels = obj["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
            if not selector:
                raise ApiError(422, "Invalid", f"{title}: spec.selector: Required value")
            if not match_labels(template_labels, selector):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{title}: spec.template.metadata.labels: Invalid value: {template_labels}: "
                    "`selector` does not match template `labels`",
                )
            containers = obj["spec"].get("template", {}).get("spec", {}).get("containers") or []
            if not containers or any(not c.get("name") or not c.get("image") for c in containers):
                message = f"{title}: spec.template.spec.containers: every container needs a name and an image"
                raise ApiError(422, "Invalid", message)

    def service_port(self, namespace: str, name: str) -> int | None:
        service_router = self.routers.get((namespace, name))
        return service_router.port if service_router else None

    def metrics(self) -> bytes:
        """The mesh's Prometheus exposition, built on the cluster's loop (the routers' counters live there)."""
        from kube_emulator.metrics import exposition

        async def build() -> bytes:
            return exposition({key: r.router.metrics for key, r in self.routers.items()})

        return asyncio.run_coroutine_threadsafe(build(), self.loop).result(timeout=10)

    def pod_port(self, namespace: str, name: str) -> int | None:
        pod = self.pods.get((namespace, name))
        return pod.instance.port if pod is not None and pod.instance.pid is not None else None

    def pod_log(self, namespace: str, name: str) -> str:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise NotFound(f'pods "{name}" not found')
        path = pod.instance.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"the emulator did not reach {what} within {timeout:g} s")

    # -- kubelet -------------------------------------------------------------------------------------------------

    def _command(self, image: str) -> list[str]:
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        return self.images.get(image) or self.images.get(repository) or HELLO

    def _kubelet(self) -> None:
        kind = self.store.kind("Pod")
        live = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in self.store.list(kind)}
        for key, obj in live.items():
            pod = self.pods.get(key)
            if pod is None and not obj["metadata"].get("deletionTimestamp"):
                pod = self._start_pod(obj)
            if pod is None:
                if obj["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(NotFound):
                        self.store.delete(kind, *key)
                continue
            if obj["metadata"].get("deletionTimestamp") and not pod.terminating:
                pod.terminating = True
                self.loop.create_task(self._terminate(pod, obj))
                continue
            self._sync_volumes(pod, obj)
            self._write_pod_status(pod, obj)
        for key in [k for k in self.pods if k not in live]:  # deleted without grace: stop the process
            pod = self.pods.pop(key)
            if not pod.terminating:
                pod.terminating = True
                self.loop.create_task(pod.instance.stop(0.0, 2.0))

    def _start_pod(self, obj: Obj) -> Pod | None:
        meta, spec = obj["metadata"], obj["spec"]
        container = (spec.get("containers") or [{}])[0]
        image = container.get("image", "")
        labels = meta.get("labels", {})
        version = labels.get(VERSION_LABEL) or (image.rsplit(":", 1)[1] if ":" in image else "latest")
        folder = self.workdir / meta["namespace"] / meta["name"]
        folder.mkdir(parents=True, exist_ok=True)
        env = {"VERSION": version}
        for item in container.get("env", []) or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
        probe = container.get("readinessProbe") or {}
        health_path = probe.get("httpGet", {}).get("path", "/health")
        pod_holder: dict[str, Pod] = {}

        def changed() -> None:
            pod = pod_holder.get("pod")
            if pod is not None and pod.instance.ready and pod.ready_since is None:
                pod.ready_since = _stamp()
            elif pod is not None and not pod.instance.ready:
                pod.ready_since = None

        release = Release(
            service=labels.get(NAME_LABEL, meta["name"]),
            version=version,
            command=self._command(image),
            env=env,
        )
        instance = Instance(
            meta["name"],
            release,
            self._kubelet_router,
            cwd=REPO,
            log_path=folder / "container.log",
            health_path=health_path,
            health_interval=self.health_interval,
            on_change=changed,
            base_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # a container sees little of the host
        )
        pod = Pod(meta["namespace"], meta["name"], instance, folder)
        pod_holder["pod"] = pod
        self.pods[(meta["namespace"], meta["name"])] = pod
        self._sync_volumes(pod, obj, first=True)
        instance.start()
        return pod

    def _sync_volumes(self, pod: Pod, obj: Obj, *, first: bool = False) -> None:
        """ConfigMap volumes as folders the process reads; environment values under a mount path point there."""
        spec = obj["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", []) or [] if "configMap" in v}
        container = (spec.get("containers") or [{}])[0]
        for mount in container.get("volumeMounts", []) or []:
            volume = volumes.get(mount.get("name"))
            if volume is None:
                continue
            host = pod.folder / "volumes" / mount["name"]
            host.mkdir(parents=True, exist_ok=True)
            pod.config_maps[mount["mountPath"]] = (volume["configMap"]["name"], str(host))
            config_map = self.store.find(self.store.kind("ConfigMap"), pod.namespace, volume["configMap"]["name"])
            for key, value in ((config_map or {}).get("data") or {}).items():
                path = host / key
                if not path.exists() or path.read_text() != value:
                    temporary = path.with_name(f".{key}.tmp")
                    temporary.write_text(value)
                    os.replace(temporary, path)
        if first:
            env = pod.instance.release.env
            for name, value in list(env.items()):
                for mount_path, (_, host) in pod.config_maps.items():
                    if value.startswith(mount_path.rstrip("/") + "/"):
                        env[name] = host + value[len(mount_path.rstrip("/")) :]

    def _write_pod_status(self, pod: Pod, obj: Obj) -> None:
        instance = pod.instance
        container = (obj["spec"].get("containers") or [{}])[0]
        ready = instance.ready
        state: Obj
        if instance.fatal:
            state = {"waiting": {"reason": "RunContainerError", "message": instance.fatal}}
        elif instance.pid is not None and instance.phase is not InstancePhase.CRASHED:
            state = {"running": {"startedAt": _stamp(instance.started_at)}}
        elif instance.restarts > 0:  # exited and waiting for (or just past) its back-off
            state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {container.get('name')} in pod {pod.name}",
                }
            }
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        last_state: Obj = {}
        if instance.last_exit_code is not None:
            last_state = {
                "terminated": {
                    "exitCode": instance.last_exit_code,
                    "reason": "Error" if instance.last_exit_code else "Completed",
                    "message": log_tail(instance.log_path, lines=3, limit=300),
                }
            }
        previous = obj.get("status", {})
        old_ready = next((c for c in previous.get("conditions", []) if c["type"] == "Ready"), None)
        ready_word = "True" if ready else "False"
        transition = old_ready["lastTransitionTime"] if old_ready and old_ready["status"] == ready_word else _stamp()
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": pod.started},
            {"type": "Ready", "status": ready_word, "lastTransitionTime": transition},
            {"type": "ContainersReady", "status": ready_word, "lastTransitionTime": transition},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": pod.started},
        ]
        status = {
            "phase": "Running" if instance.pid is not None or instance.restarts else "Pending",
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.started,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": container.get("name", "main"),
                    "image": container.get("image", ""),
                    "imageID": f"docker-pullable://{container.get('image', '')}",
                    "containerID": f"emulator://{instance.pid or 0}",
                    "ready": ready,
                    "started": instance.pid is not None,
                    "restartCount": instance.restarts,
                    "state": state,
                    "lastState": last_state,
                }
            ],
        }
        if status != previous:

            def write(current: Obj) -> None:
                current["status"] = status

            with contextlib.suppress(NotFound):
                self.store.update(self.store.kind("Pod"), pod.namespace, pod.name, write, status=True)

    async def _terminate(self, pod: Pod, obj: Obj) -> None:
        """Out of every endpoint list first, in-flight requests finish, then SIGTERM, SIGKILL after the grace."""
        grace = float(obj["metadata"].get("deletionGracePeriodSeconds") or 30)
        upstreams: list[tuple[Router, Upstream]] = []
        for service_router in self.routers.values():
            upstream = service_router.upstreams.pop(pod.name, None)
            if upstream is not None:
                service_router.router.withdraw(upstream)
                upstreams.append((service_router.router, upstream))
        for router, upstream in upstreams:
            await router.wait_drained(upstream, min(grace, 10.0))
        await pod.instance.stop(0.0, min(grace, 5.0))
        self.pods.pop((pod.namespace, pod.name), None)
        with contextlib.suppress(NotFound):
            self.store.delete(self.store.kind("Pod"), pod.namespace, pod.name)

    # -- Services: endpoints and routers -------------------------------------------------------------------------

    def _ready_pods(self, namespace: str, selector: dict[str, str]) -> list[tuple[Obj, Pod]]:
        found = []
        for obj in self.store.list(self.store.kind("Pod"), namespace):
            pod = self.pods.get((namespace, obj["metadata"]["name"]))
            if (
                pod is not None
                and not pod.terminating
                and pod.instance.ready
                and pod.instance.port
                and match_labels(obj["metadata"].get("labels", {}), selector)
            ):
                found.append((obj, pod))
        return found

    def _route_for(self, namespace: str, service: str) -> Obj | None:
        for route in self.store.list(self.store.kind("HTTPRoute"), namespace):
            for parent in route.get("spec", {}).get("parentRefs", []) or []:
                is_service = parent.get("kind") == "Service" and parent.get("group", "") in ("", "core")
                if is_service and parent.get("name") == service:
                    return route
        return None

    async def _sync_routers(self) -> None:
        listed = self.store.list(self.store.kind("Service"))
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in listed}
        for key in [k for k in self.routers if k not in services]:
            await self.routers.pop(key).router.close()
        for key, service in services.items():
            service_router = self.routers.get(key)
            if service_router is None:
                labels = service["metadata"].get("labels", {})
                router = Router(labels.get(NAME_LABEL, key[1]), labels.get(ENVIRONMENT_LABEL, key[0]))
                port = await router.listen(self.service_ports.get(key, 0))
                service_router = self.routers[key] = ServiceRouter(router, port)
            self._feed(service_router, key[0], service)

    def _feed(self, service_router: ServiceRouter, namespace: str, service: Obj) -> None:
        """Membership and weights: per version, by ready pods, or by the HTTPRoute's backendRef weights."""
        router = service_router.router
        route = self._route_for(namespace, service["metadata"]["name"])
        members: dict[str, tuple[str, int]] = {}  # pod name -> (version, port)
        weights: dict[str, float] = {}
        if route is None:
            for obj, pod in self._ready_pods(namespace, service.get("spec", {}).get("selector") or {}):
                version = pod.instance.version
                members[obj["metadata"]["name"]] = (version, pod.instance.port or 0)
                weights[version] = weights.get(version, 0) + 1
        else:
            rules = route.get("spec", {}).get("rules") or [{}]
            for ref in rules[0].get("backendRefs", []) or []:
                backend = self.store.find(self.store.kind("Service"), namespace, ref.get("name", ""))
                weight = float(ref.get("weight", 1))
                if backend is None:
                    continue
                pods = self._ready_pods(namespace, backend.get("spec", {}).get("selector") or {})
                for obj, pod in pods:
                    version = pod.instance.version
                    members[obj["metadata"]["name"]] = (version, pod.instance.port or 0)
                    weights[version] = weights.get(version, 0) + weight / len(pods)
                if not pods and weight > 0:
                    weights[f"{ref.get('name')} (no endpoints)"] = weight
        for name in list(service_router.upstreams):
            upstream = service_router.upstreams[name]
            if members.get(name) != (upstream.version, upstream.port):
                router.withdraw(upstream)
                del service_router.upstreams[name]
        for name, (version, port) in members.items():
            if name not in service_router.upstreams:
                upstream = Upstream(name, version, port)
                router.enroll(upstream)
                service_router.upstreams[name] = upstream
        integral = {v: round(w * 1000) for v, w in weights.items() if w > 0}
        if integral != router.weights:
            router.set_weights(integral)

    def _sync_endpoints(self) -> None:
        endpoints_kind = self.store.kind("Endpoints")
        for service in self.store.list(self.store.kind("Service")):
            namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
            selector = service.get("spec", {}).get("selector") or {}
            if not selector:
                continue
            addresses, not_ready = [], []
            for obj in self.store.list(self.store.kind("Pod"), namespace):
                if not match_labels(obj["metadata"].get("labels", {}), selector):
                    continue
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                address = {
                    "ip": "127.0.0.1",
                    "nodeName": "emulator",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": obj["metadata"]["name"],
                        "uid": obj["metadata"]["uid"],
                    },
                }
                (addresses if pod_ready(obj) else not_ready).append(address)
            ports = [
                {"name": p.get("name", ""), "port": p.get("targetPort", p.get("port")), "protocol": "TCP"}
                for p in service.get("spec", {}).get("ports", []) or []
            ]
            subset: Obj = {"ports": ports}
            if addresses:
                subset["addresses"] = addresses
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            body = {
                "metadata": {"name": name, "labels": dict(service["metadata"].get("labels", {}))},
                "subsets": [subset] if addresses or not_ready else [],
            }
            current = self.store.find(endpoints_kind, namespace, name)
            if current is None:
                self.store.create(endpoints_kind, namespace, body)
            elif current.get("subsets") != body["subsets"]:

                def write(obj: Obj, subsets: Any = body["subsets"]) -> None:
                    obj["subsets"] = subsets

                self.store.update(endpoints_kind, namespace, name, write)
        for endpoints in self.store.list(endpoints_kind):
            meta = endpoints["metadata"]
            if self.store.find(self.store.kind("Service"), meta["namespace"], meta["name"]) is None:
                self.store.delete(endpoints_kind, meta["namespace"], meta["name"])

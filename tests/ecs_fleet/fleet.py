"""The fleet: ECS's scheduler and the ALB, played from moto's state.

Every tick it reads the desired state over the AWS API, as ECS and the ALB would see it (services, task
definitions, listeners, SSM flags), and makes it real:

- each ECS service's tasks run as local processes of the image's command (the local platform's ``Instance``:
  readiness probe, restarts with back-off), with the task definition's environment, so ERROR_RATE, LATENCY_MS
  and CRASH_ON_START behave as they would in a container; a task that exits counts as a failed task;
- each listener of each load balancer listens on 127.0.0.1 at its own port with the local platform's weighted
  ``Router``, one pool per target group, split by the listener's forward weights; a task joins its target group's
  pool when its health check passes (the ALB's) and leaves it (draining) before it stops;
- every second, the ALB's metrics of each target group go into moto's CloudWatch (RequestCount,
  HTTPCode_Target_5XX_Count, TargetResponseTime as raw values), with the LoadBalancer and TargetGroup dimensions;
- what moto cannot store by itself is written into its models (see ``moto_gaps``).

Knobs for tests: ``fail_health(version)`` makes a version's tasks fail the ALB's health check, ``kill(version)``
SIGKILLs its processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy_mcp.core.target import InstancePhase, Release
from deploy_mcp.targets.local.metrics import RouterMetrics
from deploy_mcp.targets.local.process import Instance
from deploy_mcp.targets.local.router import Router, Upstream
from deploy_mcp.targets.local.state import kill_group
from ecs_fleet import moto_gaps

log = logging.getLogger(__name__)

ACCOUNT = "123456789012"
REGION = "eu-west-1"
TICK = 0.25
PUBLISH_SECONDS = 1.0
HELLO = [sys.executable, "-m", "deploy_mcp.examples.hello", "--port", "{port}"]


def _dimension(arn: str) -> str:
    resource = arn.split(":", 5)[-1]
    return resource.split("/", 1)[1] if resource.startswith("loadbalancer/") else resource


def circuit_breaker_threshold(desired: int) -> int:
    return min(200, max(3, math.ceil(desired * 0.5)))


@dataclass
class Task:
    """One ECS task: a local process registered (by a made-up private IP) in its service's target groups."""

    id: str
    ip: str
    service: str  # "cluster:name"
    version: str
    task_definition: str
    target_groups: list[str]
    instance: Instance
    draining: bool = False
    upstreams: dict[str, Upstream] = field(default_factory=dict)  # listener ARN -> its pool member

    @property
    def failures(self) -> int:
        return self.instance.restarts + (3 if self.instance.fatal else 0)


ELB_GENERATED = frozenset({502, 503, 504})
"""What the router answers itself (no target, a target that failed to answer, a timeout): on an ALB these are
HTTPCode_ELB_5XX_Count of the load balancer, not a target group's requests."""


def _exit_detail(instance: Instance) -> str:
    """ECS's words for a task whose essential container exited, with the container's last line of output."""
    lines = [part.strip() for part in (instance.last_error or "").split("|")]
    said = next((line for line in reversed(lines) if line and not line.startswith("---")), "")
    said = said.split("last output:", 1)[-1].strip()
    return f"Essential container in task exited (exit code {instance.last_exit_code})" + (f": {said}" if said else "")


class RecordingMetrics(RouterMetrics):
    """The router's own counters, plus every request kept for the next CloudWatch publication."""

    def __init__(
        self, service: str, environment: str, sink: list[tuple[str, int, float]], balancer_errors: Counter[str]
    ) -> None:
        super().__init__(service, environment)
        self.sink = sink
        self.balancer_errors = balancer_errors

    def record(self, version: str, status: int, seconds: float) -> None:
        super().record(version, status, seconds)
        if status in ELB_GENERATED:
            self.balancer_errors[version] += 1
        else:
            self.sink.append((version, status, seconds))


@dataclass
class Listener:
    arn: str
    balancer: str
    port: int
    router: Router
    weights: dict[str, int] = field(default_factory=dict)


@dataclass
class Wanted:
    """One ACTIVE ECS service as read from the API."""

    key: str
    name: str
    desired: int
    task_definition: str
    target_groups: list[str]
    tags: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def recreate(self) -> bool:
        """minimumHealthyPercent 0 and maximumPercent 100: ECS stops the old tasks before it starts new ones."""
        return self.config.get("minimumHealthyPercent") == 0 and self.config.get("maximumPercent", 200) <= 100


class EcsFleet:
    """``with EcsFleet() as fleet``: ``fleet.endpoint`` is the AWS endpoint (moto) the driver talks to."""

    def __init__(self, images: dict[str, list[str]] | None = None, workdir: Path | None = None) -> None:
        self.images = images or {"hello": HELLO}
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ecs-fleet-"))
        self.tasks: dict[str, list[Task]] = {}
        self.listeners: dict[str, Listener] = {}
        self.unhealthy: set[str] = set()
        self.health_interval = 0.5
        self._verdicts: dict[tuple[str, str], moto_gaps.TargetVerdict] = {}
        self._definitions: dict[str, tuple[Release, str]] = {}
        self._health_paths: dict[str, str] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._reported_failures: Counter[str] = Counter()
        self._samples: list[tuple[str, int, float]] = []
        self.balancer_errors: Counter[str] = Counter()  # target group -> 5xx the load balancer answered itself
        self._tg_balancer: dict[str, str] = {}
        self._serial = 0
        self._retiring: set[asyncio.Future[None]] = set()
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self._exit = contextlib.ExitStack()
        self.loop = asyncio.new_event_loop()
        self._dummy_router = Router("fleet", "tasks")
        self.server: Any = None
        self.endpoint = ""
        self._clients: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> EcsFleet:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import httpx

        httpx.post(f"{self.endpoint}/moto-api/reset")  # moto's state lives in the process: start from nothing
        self._exit.enter_context(moto_gaps.patched(self._verdict, self._listener_changed, self._new_deployment))
        threading.Thread(target=self.loop.run_forever, name="ecs-fleet-loop", daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="ecs-fleet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._exit.close()
        if self.server is not None:
            self.server.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EcsFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, name: str) -> Any:
        if name not in self._clients:
            import boto3

            self._clients[name] = boto3.client(
                name,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="fleet",
                aws_secret_access_key="fleet",  # moto accepts any key
            )
        return self._clients[name]

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _shutdown(self) -> None:
        tasks = [t for group in self.tasks.values() for t in group]
        await asyncio.gather(*(t.instance.stop(0.0, 2.0) for t in tasks), return_exceptions=True)
        for listener in self.listeners.values():
            await listener.router.close()

    # -- knobs ---------------------------------------------------------------------------------------------------

    def fail_health(self, version: str, failing: bool = True) -> None:
        """The ALB's health check of ``version``'s tasks fails (True) or passes again (False)."""
        (self.unhealthy.add if failing else self.unhealthy.discard)(version)

    def kill(self, version: str) -> int:
        """SIGKILL every process of ``version``; ECS counts each as a failed task. Returns how many."""
        killed = 0
        for group in list(self.tasks.values()):
            for task in group:
                if task.version == version and task.instance.pid:
                    kill_group(task.instance.pid, signal.SIGKILL)
                    killed += 1
        return killed

    def listener_port(self, arn: str) -> int:
        return self.listeners[arn].port

    # -- the loop ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        published = time.monotonic()
        while not self._stop.is_set():
            try:
                self._reconcile()
                if time.monotonic() - published >= PUBLISH_SECONDS:
                    published = time.monotonic()
                    self._publish()
            except Exception:  # a harness bug must be seen, and must not stop the fleet
                if not self._stop.is_set():
                    log.exception("ecs fleet: reconcile failed")
            self._stop.wait(TICK)

    def _reconcile(self) -> None:
        with self._sync_lock:
            wanted = self._read_services()
            self._sync_flags()
            self._call(self._apply(wanted))
            self._sync_listeners_locked()
            self._write_back(wanted)

    def _read_services(self) -> dict[str, Wanted]:
        ecs = self.client("ecs")
        wanted: dict[str, Wanted] = {}
        for cluster_arn in ecs.list_clusters().get("clusterArns", []):
            cluster = cluster_arn.rsplit("/", 1)[-1]
            names = [arn.rsplit("/", 1)[-1] for arn in ecs.list_services(cluster=cluster).get("serviceArns", [])]
            for start in range(0, len(names), 10):
                described = ecs.describe_services(cluster=cluster, services=names[start : start + 10], include=["TAGS"])
                for service in described.get("services", []):
                    if service.get("status") != "ACTIVE":
                        continue
                    key = f"{cluster}:{service['serviceName']}"
                    wanted[key] = Wanted(
                        key=key,
                        name=service["serviceName"],
                        desired=int(service.get("desiredCount") or 0),
                        task_definition=service.get("taskDefinition") or "",
                        target_groups=[lb["targetGroupArn"] for lb in service.get("loadBalancers", [])],
                        tags={t["key"]: t["value"] for t in service.get("tags") or []},
                        config=service.get("deploymentConfiguration") or {},
                    )
        return wanted

    def _definition(self, arn: str, tags: dict[str, str]) -> tuple[Release, str]:
        """The release a task definition runs (the image's command, the container's environment)."""
        if arn not in self._definitions:
            definition = self.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
            container = definition["containerDefinitions"][0]
            env = {item["name"]: item["value"] for item in container.get("environment", [])}
            image = str(container.get("image", ""))
            repository = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
            service, environment = tags.get("deploy-mcp.service", "svc"), tags.get("deploy-mcp.environment", "env")
            env["FLAGS_FILE"] = str(self._flag_file(service, environment))
            release = Release(
                service=service,
                version=env.get("VERSION", image.rsplit(":", 1)[-1]),
                command=self.images.get(repository),
                env=env,
            )
            self._definitions[arn] = (release, f"{service}-{environment}")
        return self._definitions[arn]

    def _health_path(self, target_group: str) -> str:
        if target_group not in self._health_paths:
            found = self.client("elbv2").describe_target_groups(TargetGroupArns=[target_group])["TargetGroups"]
            self._health_paths[target_group] = found[0].get("HealthCheckPath") or "/"
        return self._health_paths[target_group]

    def _flag_file(self, service: str, environment: str) -> Path:
        return self.workdir / "flags" / f"{service}-{environment}.json"

    def _sync_flags(self) -> None:
        ssm = self.client("ssm")
        for parameter in ssm.get_parameters_by_path(Path="/deploy-mcp/", Recursive=True).get("Parameters", []):
            parts = parameter["Name"].strip("/").split("/")
            if len(parts) != 4 or parts[3] != "flags":
                continue
            path = self._flag_file(parts[1], parts[2])
            if not path.exists() or path.read_text(encoding="utf-8") != parameter["Value"]:
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(".tmp")
                temporary.write_text(parameter["Value"], encoding="utf-8")
                temporary.replace(path)

    # -- tasks (on the loop) -------------------------------------------------------------------------------------

    def _new_task(self, want: Wanted) -> Task:
        release, label = self._definition(want.task_definition, want.tags)
        self._serial += 1
        task_id = f"{self._serial:032x}"[-32:]
        health = self._health_path(want.target_groups[0]) if want.target_groups else "/health"
        instance = Instance(
            f"{label}-{self._serial}",
            release,
            self._dummy_router,
            cwd=self.workdir,
            log_path=self.workdir / "logs" / f"{label}-{self._serial}.log",
            health_path=health,
            health_interval=self.health_interval,
            on_change=lambda: None,
        )
        instance.start()
        ip = f"10.0.{self._serial // 200}.{self._serial % 200 + 10}"
        return Task(task_id, ip, want.key, release.version, want.task_definition, list(want.target_groups), instance)

    def _retire(self, task: Task) -> None:
        """Deregister (draining) then stop, in the background; the task counts as draining from now on."""
        task.draining = True
        retiring = asyncio.ensure_future(self._drain_and_stop(task))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _drain_and_stop(self, task: Task, drain: float = 10.0) -> None:
        for listener_arn, upstream in list(task.upstreams.items()):
            listener = self.listeners.get(listener_arn)
            if listener is not None:
                listener.router.withdraw(upstream)
                await listener.router.wait_drained(upstream, drain)
        task.upstreams.clear()
        await task.instance.stop(0.0, 2.0)
        group = self.tasks.get(task.service, [])
        if task in group:
            group.remove(task)

    async def _apply(self, wanted: dict[str, Wanted]) -> None:
        for key, group in list(self.tasks.items()):
            if key not in wanted:
                for task in [t for t in group if not t.draining]:
                    self._retire(task)
        for key, want in wanted.items():
            group = self.tasks.setdefault(key, [])
            live = [t for t in group if not t.draining]
            current = [t for t in live if t.task_definition == want.task_definition]
            old = [t for t in live if t.task_definition != want.task_definition]
            if want.recreate and any(t.task_definition != want.task_definition for t in group):
                for task in old:  # recreate: every old task goes before a new one starts
                    self._retire(task)
                continue
            for _ in range(want.desired - len(current)):
                group.append(self._new_task(want))
            for task in current[want.desired :][::-1] if len(current) > want.desired else []:
                self._retire(task)
            if old and sum(1 for t in current if t.instance.ready) >= want.desired:
                for task in old:
                    self._retire(task)
        self._route()

    def _route(self) -> None:
        """Pool membership on every listener, and the ALB health verdict of every target."""
        verdicts: dict[tuple[str, str], moto_gaps.TargetVerdict] = {}
        for group in self.tasks.values():
            for task in group:
                healthy = task.instance.ready and task.version not in self.unhealthy and not task.draining
                for target_group in task.target_groups:
                    verdicts[(target_group, task.ip)] = self._verdict_of(task, healthy)
                for arn, listener in self.listeners.items():
                    member = task.upstreams.get(arn)
                    serving = [tg for tg in task.target_groups if tg in listener.weights]
                    if healthy and serving and task.instance.port:
                        if member is None or member.port != task.instance.port:
                            if member is not None:
                                listener.router.withdraw(member)
                            member = Upstream(task.id, serving[0], task.instance.port)
                            task.upstreams[arn] = member
                        if not member.enrolled:
                            # the load generator counts answers by version: name the task's, not the pool's
                            listener.router._version_header[serving[0]] = task.version.encode()
                            listener.router.enroll(member)
                    elif member is not None and member.enrolled and not task.draining:
                        listener.router.withdraw(member)
        self._verdicts = verdicts

    @staticmethod
    def _verdict_of(task: Task, healthy: bool) -> moto_gaps.TargetVerdict:
        if task.draining:
            return ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        if healthy:
            return ("healthy", None, None)
        if task.instance.phase is InstancePhase.STARTING and not task.instance.restarts:
            return ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
        return ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")

    def _verdict(self, target_group: str, target_id: str) -> moto_gaps.TargetVerdict | None:
        return self._verdicts.get((target_group, target_id))

    # -- the load balancer ---------------------------------------------------------------------------------------

    def _listener_changed(self) -> None:
        """Runs inside moto's request thread after a listener or rule change: apply it before the call returns."""
        if self._stop.is_set():
            return
        try:
            self._sync_listeners()
        except Exception:
            log.exception("ecs fleet: applying a listener change failed")

    def _sync_listeners(self) -> None:
        with self._sync_lock:
            self._sync_listeners_locked()

    def _sync_listeners_locked(self) -> None:
        elbv2 = self.client("elbv2")
        found: dict[str, tuple[str, int, dict[str, int]]] = {}
        for balancer in elbv2.describe_load_balancers().get("LoadBalancers", []):
            for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"]).get("Listeners", []):
                weights: dict[str, int] = {}
                for action in listener.get("DefaultActions", []):
                    if action.get("Type") != "forward":
                        continue
                    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
                    if groups:
                        weights = {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
                    elif action.get("TargetGroupArn"):
                        weights = {action["TargetGroupArn"]: 1}
                found[listener["ListenerArn"]] = (balancer["LoadBalancerArn"], int(listener["Port"]), weights)
                for target_group in weights:
                    self._tg_balancer[target_group] = balancer["LoadBalancerArn"]
        self._call(self._apply_listeners(found))

    async def _apply_listeners(self, found: dict[str, tuple[str, int, dict[str, int]]]) -> None:
        for arn, (balancer, port, weights) in found.items():
            listener = self.listeners.get(arn)
            if listener is None:
                router = Router("alb", arn.rsplit("/", 1)[-1])
                router.metrics = RecordingMetrics("alb", arn, self._samples, self.balancer_errors)
                await router.listen(port)
                listener = self.listeners[arn] = Listener(arn, balancer, port, router)
            if weights != listener.weights:
                listener.weights = dict(weights)
                listener.router.set_weights(dict(weights))
        self._route()

    # -- what moto cannot store ----------------------------------------------------------------------------------

    def _write_back(self, wanted: dict[str, Wanted]) -> None:
        from moto.ecs.models import ecs_backends
        from moto.elbv2.models import elbv2_backends

        backend = ecs_backends[ACCOUNT][REGION]
        elb = elbv2_backends[ACCOUNT][REGION]
        registered: dict[str, dict[str, dict[str, Any]]] = {}
        for key, want in wanted.items():
            service = backend.services.get(key)
            if service is None:
                continue
            group = [t for t in self.tasks.get(key, []) if t.task_definition == want.task_definition]
            running = sum(1 for t in group if not t.draining and t.instance.ready)
            failed = sum(t.failures for t in group)
            threshold = circuit_breaker_threshold(want.desired)
            if failed >= threshold and want.desired > 0:
                state, reason = "FAILED", f"ECS deployment circuit breaker: {failed} tasks failed to start."
            elif running >= want.desired and not any(t.draining for t in self.tasks.get(key, [])):
                state, reason = "COMPLETED", "ECS deployment completed."
            else:
                state, reason = "IN_PROGRESS", "ECS deployment in progress."
            self._record_failures(key, want.name, group)
            service.running_count = running
            service.pending_count = max(0, want.desired - running)
            service.events = list(self._events.get(key, []))[:20]
            self._progress_deployments(service, want, running, failed, state, reason)
        for group in self.tasks.values():
            for task in group:
                for target_group in task.target_groups:
                    if task.instance.port and task.instance.phase is not InstancePhase.STOPPED:
                        registered.setdefault(target_group, {})[task.ip] = {"Id": task.ip, "Port": task.instance.port}
        for arn, target_group in list(elb.target_groups.items()):
            targets = registered.get(arn, {})
            if dict(target_group.targets) != targets:
                target_group.targets.clear()
                target_group.targets.update(targets)

    def _progress_deployments(
        self, service: Any, want: Wanted, running: int, failed: int, state: str, reason: str
    ) -> None:
        """ECS's deployments[]: a new PRIMARY when the task definition changes, the old one ACTIVE until the new
        one COMPLETED; FAILED when the circuit breaker trips, and with rollback on, a new PRIMARY deployment of the
        last deployment's task definition (moto keeps one deployment forever and never decides anything)."""
        deployments: list[dict[str, Any]] = service.deployments
        if not deployments or deployments[0].get("taskDefinition") != want.task_definition:
            return  # changed since it was read: the next tick sees it
        primary = deployments[0]
        now = datetime.now(UTC)
        primary.update(
            runningCount=running,
            pendingCount=service.pending_count,
            desiredCount=want.desired,
            failedTasks=failed,
            rolloutState=state,
            rolloutStateReason=reason,
            updatedAt=now,
        )
        if state == "COMPLETED":
            del deployments[1:]
            return
        breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
        if state != "FAILED" or len(deployments) < 2 or not (breaker.get("enable") and breaker.get("rollback")):
            return
        previous = deployments[1]
        service.task_definition = previous["taskDefinition"]
        rollback = {
            **previous,
            "id": f"ecs-svc/{time.time_ns() % 10**19:019d}",
            "status": "PRIMARY",
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment circuit breaker: rolling back to deploymentId {previous['id']}.",
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
        }
        primary["status"] = "ACTIVE"
        deployments[:] = [rollback, primary]
        for message in (
            f"(service {want.name}) (deployment {primary['id']}) deployment failed: tasks failed to start.",
            f"(service {want.name}) rolling back to deployment {previous['id']}.",
        ):
            self._events.setdefault(want.key, []).insert(
                0, {"id": str(time.time_ns()), "createdAt": now, "message": message}
            )
        service.events = list(self._events[want.key])[:20]

    @staticmethod
    def _new_deployment(service: Any) -> None:
        """Inside moto's update_service: a new task definition starts a new PRIMARY deployment, as on ECS."""
        deployments: list[dict[str, Any]] = service.deployments
        if not deployments or deployments[0].get("taskDefinition") == service.task_definition:
            return
        now = datetime.now(UTC)
        deployments[0]["status"] = "ACTIVE"
        deployments.insert(
            0,
            {
                **deployments[0],
                "id": f"ecs-svc/{time.time_ns() % 10**19:019d}",
                "status": "PRIMARY",
                "taskDefinition": service.task_definition,
                "rolloutState": "IN_PROGRESS",
                "rolloutStateReason": "ECS deployment in progress.",
                "runningCount": 0,
                "failedTasks": 0,
                "createdAt": now,
                "updatedAt": now,
            },
        )

    def _record_failures(self, key: str, name: str, group: list[Task]) -> None:
        """A service event per failed task, the way ECS reports a stopped task (newest first)."""
        for task in group:
            seen = self._reported_failures[task.id]
            if task.failures > seen:
                self._reported_failures[task.id] = task.failures
                detail = task.instance.fatal or _exit_detail(task.instance)
                self._events.setdefault(key, []).insert(
                    0,
                    {
                        "id": f"{task.id}-{task.failures}",
                        "createdAt": datetime.now(UTC),
                        "message": f"(service {name}) has stopped 1 running tasks: (task {task.id}) {detail}",
                    },
                )

    # -- CloudWatch ----------------------------------------------------------------------------------------------

    def _publish(self) -> None:
        samples, self._samples[:] = list(self._samples), []
        if not samples:
            return
        now = datetime.now(UTC)
        by_group: dict[str, list[tuple[int, float]]] = {}
        for target_group, status, seconds in samples:
            by_group.setdefault(target_group, []).append((status, seconds))
        data: list[dict[str, Any]] = []
        for target_group, requests in by_group.items():
            balancer = self._tg_balancer.get(target_group)
            if balancer is None:
                continue
            dimensions = [
                {"Name": "TargetGroup", "Value": _dimension(target_group)},
                {"Name": "LoadBalancer", "Value": _dimension(balancer)},
            ]
            common = {"Dimensions": dimensions, "Timestamp": now, "StorageResolution": 1}
            data.append({"MetricName": "RequestCount", "Value": len(requests), "Unit": "Count", **common})
            errors = sum(1 for status, _ in requests if 500 <= status < 600)
            if errors:
                data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Value": errors, "Unit": "Count", **common})
            latencies = Counter(round(seconds, 3) for _, seconds in requests)
            pairs = sorted(latencies.items())
            for start in range(0, len(pairs), 150):
                chunk = pairs[start : start + 150]
                data.append(
                    {
                        "MetricName": "TargetResponseTime",
                        "Values": [value for value, _ in chunk],
                        "Counts": [float(count) for _, count in chunk],
                        "Unit": "Seconds",
                        **common,
                    }
                )
        cloudwatch = self.client("cloudwatch")
        for start in range(0, len(data), 20):
            cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data[start : start + 20])

"""The supervisor: one detached process per service and environment that owns its router and its instances.

Why a process of its own: the data plane must not depend on the control plane. The MCP server can crash, be
killed or be restarted by its client at any time; the service it deployed keeps serving, and the next server
finds the supervisor again through the state file and re-adopts it. The supervisor answers a small JSON control
API on 127.0.0.1 (a random port and a bearer token, both in the 0600 state file), runs the router and the
health probes on one asyncio loop, and its instances die with it (see process.py).

Started as ``python -m deploy_mcp.targets.local.supervisor ...`` by LocalWorkload; it forks once so that it is
nobody's child (no zombie in the server), prints one JSON line on stdout saying whether it could bind its port,
and then writes only to its log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from deploy_mcp.core.target import (
    ErrorCode,
    InstanceHealth,
    InstancePhase,
    Release,
    TargetError,
    TargetState,
    VersionState,
    check_weights,
)
from deploy_mcp.targets.local import http1
from deploy_mcp.targets.local.environment import ProcessRole, marker
from deploy_mcp.targets.local.process import Instance, probe
from deploy_mcp.targets.local.router import Router
from deploy_mcp.targets.local.state import Paths, ensure_folder, remove_state, start_ticks, write_state

log = logging.getLogger("deploy_mcp.local.supervisor")

DEFAULT_KILL_TIMEOUT = 5.0
STATE_FILE_CHECK = 0.5


class Version:
    """A version's desired size, its instances and its traffic weight."""

    def __init__(self, release: Release, replicas: int, inherited: dict[str, str] | None = None) -> None:
        self.release = release
        # what the service may have of deploy-mcp's environment; kept in memory only, never in the state file
        self.inherited = inherited or {}
        self.replicas = replicas
        self.instances: list[Instance] = []
        self.next_index = 1
        self.preview_port: int | None = None

    @property
    def name(self) -> str:
        return self.release.version

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.phase not in (InstancePhase.STOPPED, InstancePhase.DRAINING)]

    def ready(self) -> int:
        return sum(1 for i in self.instances if i.ready)

    def restarts(self) -> int:
        return sum(i.restarts for i in self.instances)

    def failure(self) -> tuple[ErrorCode, str] | None:
        """Why this version cannot become ready, if it cannot: a spawn error or a crash loop."""
        for instance in self.instances:
            if instance.fatal:
                return instance.fatal_code, instance.fatal
        for instance in self.instances:
            if instance.crash_loop:
                return ErrorCode.CRASH_LOOP, (
                    f"instance {instance.id} is crash-looping: restarted {instance.restarts} times, "
                    f"last {instance.last_error}"
                )
        return None


class Supervisor:
    def __init__(
        self,
        paths: Paths,
        cwd: Path,
        health_path: str,
        health_interval: float,
        kill_timeout: float = DEFAULT_KILL_TIMEOUT,
    ) -> None:
        self.paths = paths
        self.service = paths.service
        self.environment = paths.environment
        self.cwd = cwd
        self.health_path = health_path
        self.health_interval = health_interval
        self.kill_timeout = kill_timeout
        self.router = Router(self.service, self.environment)
        self.router.gauges = self._gauges
        self.versions: dict[str, Version] = {}
        self.weights: dict[str, int] = {}
        self.router_port = 0
        self.control_port = 0
        self.token = secrets.token_urlsafe(24)
        self.changed = asyncio.Condition()
        self.stopped = asyncio.Event()
        self._save_pending = False
        self._shutting_down = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def open(self, router_port: int) -> None:
        self.router_port = await self.router.listen(router_port)
        server = await asyncio.start_server(self._control, "127.0.0.1", 0, limit=http1.MAX_HEAD_BYTES)
        self.control_port = server.sockets[0].getsockname()[1]
        self._control_server = server
        self._save_now()

    async def keep_state_file(self) -> None:
        """Write the state file again when it is gone (``rm -rf .deploy``), so the platform can adopt us."""
        while not self.stopped.is_set():
            await asyncio.sleep(STATE_FILE_CHECK)
            if not self._shutting_down and not self.paths.state_file.exists():
                log.warning("the state file %s was removed; writing it again", self.paths.state_file)
                self._save_now()

    def request_shutdown(self, drain_timeout: float = 5.0) -> None:
        task = asyncio.get_running_loop().create_task(self.shutdown(drain_timeout))
        self._tasks.add(task)

    async def shutdown(self, drain_timeout: float) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        for version in list(self.versions.values()):
            await self._stop_instances(version.instances, drain_timeout)
        await self.router.close()
        self._control_server.close()
        remove_state(self.paths)
        self.stopped.set()

    def _notify(self) -> None:
        """Wake anyone waiting on a state change and schedule one state-file write for this loop turn."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._notify_waiters())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not self._save_pending:
            self._save_pending = True
            loop.call_soon(self._save_now)

    async def _notify_waiters(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _save_now(self) -> None:
        self._save_pending = False
        if self.stopped.is_set():
            return
        write_state(
            self.paths,
            {
                "service": self.service,
                "environment": self.environment,
                "supervisor": {
                    "pid": os.getpid(),
                    "ticks": start_ticks(os.getpid()),
                    "router_port": self.router_port,
                    "control_port": self.control_port,
                    "token": self.token,
                },
                "weights": self.weights,
                "versions": {
                    name: {"replicas": v.replicas, "release": v.release.model_dump(mode="json")}
                    for name, v in self.versions.items()
                },
                "instances": [i.record() for v in self.versions.values() for i in v.instances],
                "updated_at": time.time(),
            },
        )

    # -- what the control API offers -------------------------------------------------------------------------------

    def state(self) -> TargetState:
        versions = []
        for name, version in self.versions.items():
            instances = [i.snapshot() for i in version.instances]
            failure = version.failure()
            versions.append(
                VersionState(
                    version=name,
                    replicas=version.replicas,
                    ready=version.ready(),
                    weight=self.weights.get(name, 0),
                    restarts=version.restarts(),
                    crash_loop=any(i.crash_loop for i in version.instances),
                    problem=failure[1] if failure else None,
                    endpoint=f"http://127.0.0.1:{version.preview_port}" if version.preview_port else None,
                    instances=instances,
                )
            )
        return TargetState(
            service=self.service,
            environment=self.environment,
            kind="local",
            running=True,
            endpoint=f"http://127.0.0.1:{self.router_port}",
            versions=versions,
        )

    def _where(self, version: str | None = None) -> str:
        base = f"{self.service}/{self.environment}"
        return f"{base} {version}" if version else base

    async def start_version(
        self, release: Release, replicas: int, timeout: float, inherited: dict[str, str] | None = None
    ) -> None:
        if release.version in self.versions:
            raise TargetError(
                f"{self._where(release.version)} is already running; use scale to change its size, "
                "or stop it first to start it again",
                ErrorCode.ALREADY_RUNNING,
            )
        version = Version(release, replicas, inherited)
        self.versions[release.version] = version
        self.weights.setdefault(release.version, 0)
        version.preview_port = await self.router.open_preview(release.version)
        self._add_instances(version, replicas)
        try:
            await self._wait_ready(version, replicas, timeout)
        except TargetError:
            await self._remove_version(version, drain_timeout=0.0)
            raise
        if not any(w > 0 for w in self.weights.values()):
            self._apply_weights({**dict.fromkeys(self.weights, 0), release.version: 100})
        self._notify()

    def _add_instances(self, version: Version, count: int) -> None:
        for _ in range(count):
            instance_id = f"{version.name}-{version.next_index}"
            version.next_index += 1
            instance = Instance(
                instance_id,
                version.release,
                self.router,
                cwd=self._cwd_for(version.release),
                log_path=self.paths.instance_log(instance_id),
                health_path=self.health_path,
                health_interval=self.health_interval,
                on_change=self._notify,
                base_env=version.inherited,
                owner=marker(self.paths.state_dir, self.service, self.environment, ProcessRole.INSTANCE),
            )
            version.instances.append(instance)
            instance.start()
        self._notify()

    def _cwd_for(self, release: Release) -> Path:
        return (self.cwd / release.cwd) if release.cwd else self.cwd

    async def _wait_ready(self, version: Version, replicas: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def settled() -> bool:
            return version.ready() >= replicas or version.failure() is not None

        async with self.changed:
            while not settled():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 0.5)):
                        await self.changed.wait()
        failure = version.failure()
        if failure is not None:
            code, reason = failure
            raise TargetError(f"{self._where(version.name)} cannot start: {reason}", code)
        if version.ready() < replicas:
            waiting = [i for i in version.instances if not i.ready]
            last = next((i.redact(i.last_probe.detail) for i in waiting if i.last_probe), "no answer yet")
            raise TargetError(
                f"{self._where(version.name)}: {version.ready()} of {replicas} instances ready after "
                f"{timeout:g} s; last health check of {waiting[0].id}: {last}",
                ErrorCode.HEALTH_TIMEOUT,
            )

    def _version(self, name: str) -> Version:
        version = self.versions.get(name)
        if version is None:
            known = ", ".join(self.versions) or "none"
            raise TargetError(f"{self._where()} has no version {name} (running: {known})", ErrorCode.UNKNOWN_VERSION)
        return version

    async def scale(self, name: str, replicas: int, timeout: float, drain_timeout: float) -> None:
        version = self._version(name)
        if replicas == 0 and self.weights.get(name, 0) > 0:
            raise TargetError(
                f"{self._where(name)} still receives {self.weights[name]}% of traffic; "
                "move its weight to another version before scaling it to 0",
                ErrorCode.STILL_SERVING,
            )
        version.replicas = replicas
        live = version.live()
        if len(live) < replicas:
            self._add_instances(version, replicas - len(live))
            await self._wait_ready(version, replicas, timeout)
        elif len(live) > replicas:
            # the least useful go first: not ready before ready, newest before oldest
            ranked = sorted(live, key=lambda i: (i.ready, -version.instances.index(i)))
            await self._stop_instances(ranked[: len(live) - replicas], drain_timeout)
            version.instances = [i for i in version.instances if i.phase is not InstancePhase.STOPPED]
        self._notify()

    def set_weights(self, weights: dict[str, int]) -> None:
        ready = {name: v.ready() for name, v in self.versions.items()}
        self._apply_weights(check_weights(weights, ready, self._where()))

    def _apply_weights(self, weights: dict[str, int]) -> None:
        self.weights = weights
        self.router.set_weights(weights)
        self._notify()

    async def stop_version(self, name: str, drain_timeout: float) -> None:
        version = self._version(name)
        weight = self.weights.get(name, 0)
        others = [v for n, v in self.versions.items() if n != name and v.ready()]
        if weight > 0 and others:
            raise TargetError(
                f"{self._where(name)} still receives {weight}% of traffic; move it with set_weights "
                f"(for example to {others[0].name}) before stopping it",
                ErrorCode.STILL_SERVING,
            )
        await self._remove_version(version, drain_timeout)

    async def _remove_version(self, version: Version, drain_timeout: float) -> None:
        await self._stop_instances(version.instances, drain_timeout)
        self.versions.pop(version.name, None)
        self.router.forget(version.name)
        remaining = {n: w for n, w in self.weights.items() if n != version.name}
        self._apply_weights(remaining)

    async def _stop_instances(self, instances: list[Instance], drain_timeout: float) -> None:
        await asyncio.gather(*(i.stop(drain_timeout, self.kill_timeout) for i in instances))

    async def health(self, name: str | None) -> list[InstanceHealth]:
        versions = [self._version(name)] if name else list(self.versions.values())
        instances = [i for v in versions for i in v.instances]

        async def one(instance: Instance) -> InstanceHealth:
            if instance.port is None or instance.pid is None:
                return InstanceHealth(
                    instance=instance.id,
                    version=instance.version,
                    healthy=False,
                    detail=instance.fatal or instance.last_error or f"not running ({instance.phase})",
                )
            result = await probe(instance.port, self.health_path, 5.0)
            return InstanceHealth(
                instance=instance.id,
                version=instance.version,
                healthy=result.healthy,
                url=f"http://127.0.0.1:{instance.port}{self.health_path}",
                status_code=result.status_code,
                status=result.status,
                detail=instance.redact(result.detail),
                latency_ms=result.latency_ms,
            )

        return list(await asyncio.gather(*(one(i) for i in instances)))

    def _gauges(self) -> dict[str, dict[str, float]]:
        return {
            "deploy_mcp_traffic_weight": {n: float(self.weights.get(n, 0)) for n in self.versions},
            "deploy_mcp_instances_ready": {n: float(v.ready()) for n, v in self.versions.items()},
        }

    # -- the control API -------------------------------------------------------------------------------------------

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await http1.read_head(reader)
            if head is None:
                return
            request = http1.parse_request(head)
            body = await http1.read_body(reader, request.framing, 4 * 1024 * 1024)
            token = http1.header(head.lower(), b"authorization")
            if token != f"bearer {self.token}".lower().encode():
                writer.write(http1.json_response(401, {"error": "wrong or missing control token"}))
                return
            url = urlsplit(request.target.decode())
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            payload = json.loads(body) if body else {}
            try:
                status, answer = 200, await self._dispatch(request.method.decode(), url.path, query, payload)
            except TargetError as exc:
                status, answer = 409, {"error": exc.message, "code": exc.code.value}
            except (KeyError, TypeError, ValueError) as exc:
                status, answer = 400, {"error": f"bad control request: {exc}", "code": "unavailable"}
            writer.write(http1.json_response(status, answer))
        except Exception:
            log.exception("control request failed")
            with contextlib.suppress(Exception):
                writer.write(http1.json_response(500, {"error": "the supervisor failed; see its log"}))
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()

    async def _dispatch(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        if method == "GET" and path == "/state":
            return self.state().model_dump(mode="json")
        if method == "GET" and path == "/health":
            return [h.model_dump(mode="json") for h in await self.health(query.get("version"))]
        if method == "GET" and path == "/metrics":
            window = float(query.get("window", "60"))
            snapshots = self.router.metrics.snapshot(window, list(self.versions) or None)
            return {name: snap.model_dump(mode="json") for name, snap in snapshots.items()}
        if method == "POST" and path == "/start":
            release = Release.model_validate(body["release"])
            inherited = {str(k): str(v) for k, v in body.get("inherited", {}).items()}
            await self.start_version(release, int(body["replicas"]), float(body["timeout"]), inherited)
            return self.state().model_dump(mode="json")
        if method == "POST" and path == "/scale":
            await self.scale(
                body["version"], int(body["replicas"]), float(body["timeout"]), float(body["drain_timeout"])
            )
            return self.state().model_dump(mode="json")
        if method == "POST" and path == "/weights":
            self.set_weights({str(k): v for k, v in body["weights"].items()})
            return self.state().model_dump(mode="json")
        if method == "POST" and path == "/stop":
            await self.stop_version(body["version"], float(body["drain_timeout"]))
            return self.state().model_dump(mode="json")
        if method == "POST" and path == "/shutdown":
            drain = float(body.get("drain_timeout", 5.0))
            self.request_shutdown(drain)
            return {"stopping": True}
        raise TargetError(f"unknown control call {method} {path}", ErrorCode.UNAVAILABLE)


async def _main(args: argparse.Namespace, handshake: int) -> int:
    paths = Paths(Path(args.state_dir), args.service, args.environment)
    supervisor = Supervisor(paths, Path(args.cwd), args.health_path, args.health_interval, args.kill_timeout)
    try:
        await supervisor.open(args.port)
    except OSError as exc:
        code = ErrorCode.PORT_IN_USE if exc.errno in (98, 48, 10048) else ErrorCode.UNAVAILABLE
        _announce(handshake, {"ok": False, "code": code.value, "error": str(exc), "pid": os.getpid()})
        return 1
    _announce(handshake, {"ok": True, "router_port": supervisor.router_port, "control_port": supervisor.control_port})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, supervisor.request_shutdown)
    keeper = loop.create_task(supervisor.keep_state_file())
    await supervisor.stopped.wait()
    keeper.cancel()
    log.info("supervisor for %s/%s stopped", paths.service, paths.environment)
    return 0


def _announce(fd: int, message: dict[str, Any]) -> None:
    """The one line LocalWorkload waits for; afterwards stdout is the log, so stray prints cannot block."""
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())
    with contextlib.suppress(OSError):
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy_mcp.targets.local.supervisor")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--health-path", default="/health")
    parser.add_argument("--health-interval", type=float, default=1.0)
    parser.add_argument("--kill-timeout", type=float, default=DEFAULT_KILL_TIMEOUT)
    parser.add_argument("--foreground", action="store_true", help="do not fork (for debugging)")
    args = parser.parse_args(argv)

    if not args.foreground:
        if os.fork() > 0:
            os._exit(0)  # the parent is reaped at once by whoever started us; the child is nobody's child
        os.setsid()  # its own session and process group, detached from any terminal
    handshake = os.dup(1)
    paths = Paths(Path(args.state_dir), args.service, args.environment)
    ensure_folder(paths)
    log_fd = os.open(paths.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return asyncio.run(_main(args, handshake))


if __name__ == "__main__":
    sys.exit(main())

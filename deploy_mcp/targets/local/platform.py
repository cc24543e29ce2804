"""The local platform: a service's versions as processes behind a weighted router, one supervisor per service
and environment.

``LocalWorkload`` is the workload part (start, scale, stop, state) and owns the way to the supervisor; the traffic
router, the prober and the metrics (traffic.py) talk to the same supervisor through it, and the flags live in the
service's flagd file (flags.py). ``create_platform`` combines them into the ``Platform`` the runner drives.

This side lives in the MCP server (or a test, or the CLI) and holds no state of its own: every call finds the
supervisor of the service and environment through its state file, starting one when a version is started and
none runs, and talks to it over its control API. A server that was killed and restarted therefore simply carries
on; a supervisor that died is reported (``TargetState.problem``) and whatever it left is stopped by ``stop``
or by the next ``start_version``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from deploy_mcp.config.loader import Project
from deploy_mcp.config.schema import Environment, Service, TargetKind
from deploy_mcp.core.platform import Platform
from deploy_mcp.core.private import open_private
from deploy_mcp.core.target import (
    ErrorCode,
    InstancePhase,
    InstanceState,
    Release,
    TargetError,
    TargetState,
    VersionState,
)
from deploy_mcp.targets.local import state as files
from deploy_mcp.targets.local.environment import ProcessRole, find, inherited, supervisor_environment
from deploy_mcp.targets.local.flags import FlagdFile
from deploy_mcp.targets.local.traffic import LocalProber, LocalTrafficMetrics, LocalTrafficRouter

SUPERVISOR_START_TIMEOUT = 15.0
CONTROL_TIMEOUT = 30.0
ADOPT_TIMEOUT = 3.0  # a supervisor rewrites a missing state file within a second
QUICK_TIMEOUT = 2.0  # for calls a healthy supervisor answers at once; stop must not wait long on a hung one


class LocalWorkload:
    """Versions as processes behind a weighted router, one supervisor process per service and environment."""

    kind = "local"

    def __init__(
        self,
        project: Project,
        *,
        health_interval: float = 1.0,
        start_timeout: float = 60.0,
        kill_timeout: float = 5.0,
    ) -> None:
        self.project = project
        self.health_interval = health_interval
        self.start_timeout = start_timeout
        self.kill_timeout = kill_timeout

    # -- configuration -------------------------------------------------------------------------------------------

    def _service(self, name: str) -> Service:
        services = self.project.config.services
        service = services.get(name)
        if service is None:
            known = ", ".join(sorted(services)) or "none (add a [services.NAME] table to deploy.toml)"
            raise TargetError(f"unknown service {name!r}; known services: {known}", ErrorCode.UNKNOWN_SERVICE)
        if service.target is not TargetKind.LOCAL:
            raise TargetError(
                f"services.{name}.target is {service.target.value!r}; the local platform runs only services "
                'with target = "local"',
                ErrorCode.UNKNOWN_SERVICE,
            )
        return service

    def _environment(self, service_name: str, name: str) -> Environment:
        service = self._service(service_name)
        environment = service.environments.get(name)
        if environment is None:
            known = ", ".join(sorted(service.environments)) or "none"
            raise TargetError(
                f"service {service_name!r} has no environment {name!r}; known: {known} "
                f"(add [services.{service_name}.environments.{name}] to deploy.toml)",
                ErrorCode.UNKNOWN_ENVIRONMENT,
            )
        return environment

    def configured_port(self, service: str, environment: str) -> int | None:
        """The router port deploy.toml fixes for this environment, if any."""
        return self._environment(service, environment).port

    def _paths(self, service: str, environment: str) -> files.Paths:
        return files.Paths(self.project.state_dir, service, environment)

    # -- finding and starting the supervisor -----------------------------------------------------------------------

    def _client(self, service: str, environment: str) -> _Control | None:
        """The running supervisor, or None; raises only when it exists but does not answer."""
        paths = self._paths(service, environment)
        data = files.read_state(paths) or self._adopt(paths)
        if data is None:
            return None
        supervisor = data.get("supervisor", {})
        if not files.alive(supervisor.get("pid"), supervisor.get("ticks")):
            return None
        return _Control(supervisor["control_port"], supervisor["token"], f"{service}/{environment}")

    def _adopt(self, paths: files.Paths) -> dict[str, Any] | None:
        """The state of a supervisor that runs although its state file is gone (``rm -rf .deploy``).

        Found by the marker in its environment; it rewrites a missing state file within a second (see the
        supervisor), so waiting for the file is all adopting takes, and the file again holds its port and token.
        """
        if not any(
            found.role is ProcessRole.SUPERVISOR for found in find(paths.state_dir, paths.service, paths.environment)
        ):
            return None
        deadline = time.monotonic() + ADOPT_TIMEOUT
        while time.monotonic() < deadline:
            data = files.read_state(paths)
            if data is not None:
                return data
            time.sleep(0.05)
        return None

    def _stop_unrecorded(self, paths: files.Paths) -> list[str]:
        """Stop this service's processes found by their marker, whatever the state file says (or if it is gone).

        A supervisor gets SIGTERM first (it drains and stops its instances), then SIGKILL; an instance left
        without one is stopped with its process group.
        """
        found = list(find(paths.state_dir, paths.service, paths.environment))
        stopped = []
        supervisors = [f for f in found if f.role is ProcessRole.SUPERVISOR]
        for supervisor in supervisors:
            files.kill_process(supervisor.pid, supervisor.ticks, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_timeout + 5.0
        while time.monotonic() < deadline and any(files.alive(s.pid, s.ticks) for s in supervisors):
            time.sleep(0.05)
        for supervisor in supervisors:
            files.kill_process(supervisor.pid, supervisor.ticks)
            stopped.append(f"supervisor (pid {supervisor.pid})")
        for instance in (f for f in found if f.role is ProcessRole.INSTANCE):
            if files.alive(instance.pid, instance.ticks) or files.group_alive(instance.pid):
                files.terminate_group(instance.pid, self.kill_timeout)
            stopped.append(f"instance (pid {instance.pid})")
        files.remove_state(paths)
        return stopped

    def _ensure_supervisor(self, service: str, environment: str) -> tuple[_Control, bool]:
        paths = self._paths(service, environment)
        with files.locked(paths):
            client = self._client(service, environment)
            if client is not None:
                return client, False
            self._clean_leftovers(paths)
            return self._spawn_supervisor(service, environment, paths), True

    def _spawn_supervisor(self, service_name: str, environment_name: str, paths: files.Paths) -> _Control:
        service = self._service(service_name)
        environment = self._environment(service_name, environment_name)
        port = environment.port or 0
        if port:
            holder = self._port_holder(port, service_name, environment_name)
            if holder:
                raise TargetError(
                    f"services.{service_name}.environments.{environment_name}.port {port} is already used by "
                    f"{holder}; give each environment its own port",
                    ErrorCode.PORT_IN_USE,
                )
        root = self.project.root  # each release's cwd (the service's, by default) is relative to it
        argv = [
            sys.executable,
            "-m",
            "deploy_mcp.targets.local.supervisor",
            "--state-dir",
            str(self.project.state_dir),
            "--service",
            service_name,
            "--environment",
            environment_name,
            "--cwd",
            str(root),
            "--port",
            str(port),
            "--health-path",
            service.health,
            "--health-interval",
            str(self.health_interval),
            "--kill-timeout",
            str(self.kill_timeout),
        ]
        files.ensure_folder(paths)
        with open_private(paths.supervisor_log) as early_errors:  # an import error lands in the log too
            launcher = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=early_errors,
                start_new_session=True,
                cwd=str(root),
                env=supervisor_environment(self.project.state_dir, service_name, environment_name),
            )
        assert launcher.stdout is not None
        try:
            line = _read_line(launcher.stdout.fileno(), SUPERVISOR_START_TIMEOUT)
        finally:
            launcher.stdout.close()
            launcher.wait()  # the launcher forks and exits at once; the supervisor is nobody's child
        if not line:
            raise TargetError(
                f"the local supervisor for {service_name}/{environment_name} did not start; see {paths.supervisor_log}",
                ErrorCode.UNAVAILABLE,
            )
        answer = json.loads(line)
        if not answer.get("ok"):
            _wait_gone(answer.get("pid"), 5.0)  # it exits at once; nothing may be left when we report
            if answer.get("code") == ErrorCode.PORT_IN_USE.value:
                raise TargetError(
                    f"services.{service_name}.environments.{environment_name}.port {port} is already in use by "
                    "another program; stop it or choose another port",
                    ErrorCode.PORT_IN_USE,
                )
            raise TargetError(
                f"the local router for {service_name}/{environment_name} could not start: {answer.get('error')}",
                ErrorCode.UNAVAILABLE,
            )
        deadline = time.monotonic() + SUPERVISOR_START_TIMEOUT
        while time.monotonic() < deadline:  # the state file is written right after the announcement
            client = self._client(service_name, environment_name)
            if client is not None:
                return client
            time.sleep(0.01)
        raise TargetError(f"the local supervisor for {service_name}/{environment_name} vanished", ErrorCode.UNAVAILABLE)

    def _port_holder(self, port: int, service: str, environment: str) -> str | None:
        """Another of our own routers on this port (a clearer message than 'address in use')."""
        for other_service, other_environment in files.known(self.project.state_dir):
            if (other_service, other_environment) == (service, environment):
                continue
            try:
                data = files.read_state(self._paths(other_service, other_environment)) or {}
            except files.StateFileError:
                continue
            supervisor = data.get("supervisor", {})
            if supervisor.get("router_port") == port and files.alive(supervisor.get("pid"), supervisor.get("ticks")):
                return f"the router of {other_service}/{other_environment}"
        return None

    def _clean_leftovers(self, paths: files.Paths) -> list[str]:
        """Stop what a dead supervisor left behind and forget it; returns what was stopped."""
        data = files.read_state(paths)
        if data is None:
            return self._stop_unrecorded(paths)  # the state file is gone, its processes may not be
        stopped = []
        for record in data.get("instances", []):
            pid = record.get("pid")
            if pid and (files.alive(pid, record.get("ticks")) or files.group_alive(pid)):
                files.terminate_group(pid, self.kill_timeout)
                stopped.append(f"{record.get('id')} (pid {pid})")
        files.remove_state(paths)
        return stopped

    # -- the Workload ----------------------------------------------------------------------------------------------

    def state(self, service: str, environment: str) -> TargetState:
        client = self._client(service, environment)
        if client is not None:
            return TargetState.model_validate(client.call("GET", "/state"))
        if files.read_state(self._paths(service, environment)) is None:
            self._environment(service, environment)  # nothing known: a typo deserves a clear error
        return self._report_dead(service, environment)

    def _report_dead(self, service: str, environment: str) -> TargetState:
        """What the state file says about a supervisor that is gone: its instances, alive or not."""
        data = files.read_state(self._paths(service, environment))
        empty = TargetState(service=service, environment=environment, kind=self.kind, running=False)
        if data is None:
            strays = list(find(self.project.state_dir, service, environment))
            if not strays:
                return empty
            pids = ", ".join(str(found.pid) for found in strays)
            return empty.model_copy(
                update={
                    "problem": f"{len(strays)} process(es) of {service}/{environment} run without a state file "
                    f"(pid {pids}): `deploy-mcp local stop {service}` stops them"
                }
            )
        weights = data.get("weights", {})
        versions: dict[str, VersionState] = {}
        leftovers = 0
        for name, info in data.get("versions", {}).items():
            versions[name] = VersionState(version=name, replicas=info.get("replicas", 0), weight=weights.get(name, 0))
        for record in data.get("instances", []):
            pid = record.get("pid")
            running = bool(pid) and (files.alive(pid, record.get("ticks")) or files.group_alive(pid))
            leftovers += running
            version = versions.setdefault(record["version"], VersionState(version=record["version"], replicas=0))
            version.instances.append(
                InstanceState(
                    id=record["id"],
                    version=record["version"],
                    phase=InstancePhase.ORPHANED if running else InstancePhase.STOPPED,
                    pid=pid if running else None,
                    port=record.get("port"),
                )
            )
        pid = data.get("supervisor", {}).get("pid")
        problem = f"the local supervisor (pid {pid}) is no longer running"
        problem += (
            f"; {leftovers} instance process(es) it left are still running: `deploy-mcp local stop {service}` "
            "stops them"
            if leftovers
            else "; its instances are gone. Start a version again to serve traffic"
        )
        return empty.model_copy(update={"problem": problem, "versions": list(versions.values())})

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        config = self._service(service)
        self._environment(service, environment)
        if replicas < 1:
            raise TargetError(f"replicas must be at least 1, got {replicas}", ErrorCode.INVALID_WEIGHTS)
        self._check_command(service, config, release)
        client, spawned = self._ensure_supervisor(service, environment)
        wait = timeout if timeout is not None else self.start_timeout
        body = {
            "release": release.model_dump(mode="json"),
            "replicas": replicas,
            "timeout": wait,
            "inherited": inherited(release.inherit_env),  # sent, never written to the state file
        }
        try:
            client.call("POST", "/start", body, timeout=wait + CONTROL_TIMEOUT)
        except TargetError:
            if spawned:
                self._shutdown_if_empty(service, environment)
            raise

    def _check_command(self, service_name: str, service: Service, release: Release) -> None:
        """Fail before anything starts when the program cannot be found (the supervisor checks again)."""
        where = f"services.{service_name}" + (
            f".versions.{release.version}.command"
            if service.versions.get(release.version) and service.versions[release.version].command
            else ".command"
        )
        if not release.command:
            raise TargetError(
                f"{where} is missing: the local platform needs a command such as "
                '["{python}", "-m", "myapp", "--port", "{port}"]',
                ErrorCode.NO_COMMAND,
            )
        program = release.command[0].replace("{python}", sys.executable)
        cwd = self.project.root / (release.cwd or service.cwd or ".")
        if not cwd.is_dir():
            raise TargetError(f"services.{service_name}.cwd: {cwd} is not a directory", ErrorCode.START_FAILED)
        if os.sep in program or (os.altsep and os.altsep in program):
            found = (cwd / program).is_file()
        else:
            path = {**os.environ, **release.env}.get("PATH", os.environ.get("PATH"))
            found = shutil.which(program, path=path) is not None
        if not found:
            raise TargetError(
                f"{where}: command not found: {program!r} is not on PATH (nor a file relative to {cwd}); "
                "install it or fix the command",
                ErrorCode.COMMAND_NOT_FOUND,
            )

    def _shutdown_if_empty(self, service: str, environment: str) -> None:
        client = self._client(service, environment)
        if client is None:
            return
        if not TargetState.model_validate(client.call("GET", "/state")).versions:
            self._shutdown(service, environment, client, drain_timeout=0.0)

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        if replicas < 0:
            raise TargetError(f"replicas cannot be negative, got {replicas}", ErrorCode.INVALID_WEIGHTS)
        wait = timeout if timeout is not None else self.start_timeout
        body = {"version": version, "replicas": replicas, "timeout": wait, "drain_timeout": 10.0}
        self.control(service, environment).call("POST", "/scale", body, timeout=wait + CONTROL_TIMEOUT)

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        client = self.control(service, environment)
        body = {"version": version, "drain_timeout": drain_timeout}
        client.call("POST", "/stop", body, timeout=drain_timeout + self.kill_timeout + CONTROL_TIMEOUT)

    # -- beyond the Workload: tearing down -------------------------------------------------------------------------

    def stop(self, service: str, environment: str, *, drain_timeout: float = 5.0) -> list[str]:
        """Stop every instance and the router of a service in one environment; returns what was stopped."""
        paths = self._paths(service, environment)
        with files.locked(paths):
            try:
                client = self._client(service, environment)
            except files.StateFileError:  # garbled: find the processes by their marker instead
                return self._stop_unrecorded(paths)
            if client is None:
                return self._clean_leftovers(paths)
            try:
                current = TargetState.model_validate(client.call("GET", "/state", timeout=QUICK_TIMEOUT))
            except TargetError:  # a hung supervisor is killed below all the same
                current = self._report_dead(service, environment)
            stopped = [f"{i.id} (pid {i.pid})" for v in current.versions for i in v.instances if i.pid]
            self._shutdown(service, environment, client, drain_timeout)
            # What an instance started in a session of its own (setsid, a daemonizing worker) left its process
            # group, so the shutdown missed it; it still carries the marker.
            left = self._stop_unrecorded(paths)
            return [*stopped, f"router on {current.endpoint or 'its port'}", *(f"left behind: {x}" for x in left)]

    def _shutdown(self, service: str, environment: str, client: _Control, drain_timeout: float) -> None:
        paths = self._paths(service, environment)
        data = files.read_state(paths) or {}
        supervisor = data.get("supervisor", {})
        instances = data.get("instances", [])
        try:
            client.call("POST", "/shutdown", {"drain_timeout": drain_timeout}, timeout=QUICK_TIMEOUT)
        except TargetError:
            files.kill_process(supervisor.get("pid"), supervisor.get("ticks"))  # hung: its instances die with it
        deadline = time.monotonic() + drain_timeout + self.kill_timeout + 5.0
        while time.monotonic() < deadline and files.alive(supervisor.get("pid"), supervisor.get("ticks")):
            time.sleep(0.02)
        files.kill_process(supervisor.get("pid"), supervisor.get("ticks"))  # its instances die with it
        for record in instances:  # belt and braces: nothing of this service may outlive stop
            if record.get("pid") and files.group_alive(record["pid"]):
                files.terminate_group(record["pid"], self.kill_timeout)
        files.remove_state(paths)

    def environments(self) -> list[tuple[str, str]]:
        """(service, environment) pairs that have local state, running or not, or processes without state."""
        pairs = set(files.known(self.project.state_dir))
        pairs |= {(found.service, found.environment) for found in find(self.project.state_dir)}
        return sorted(pairs)

    def control(self, service: str, environment: str) -> _Control:
        """The supervisor's control API, for the router, prober and metrics parts; not_running when there is none."""
        self._environment(service, environment)
        client = self._client(service, environment)
        if client is None:
            raise TargetError(
                f"{service}/{environment} is not running on the local platform; start a version first",
                ErrorCode.NOT_RUNNING,
            )
        return client


class _Control:
    """A tiny blocking JSON client for the supervisor's control API (stdlib only: no import cost)."""

    def __init__(self, port: int, token: str, label: str) -> None:
        self.port = port
        self.token = token
        self.label = label

    def call(self, method: str, path: str, body: Any = None, timeout: float = CONTROL_TIMEOUT) -> Any:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TargetError(
                f"the local supervisor of {self.label} did not answer ({exc}); `deploy-mcp local status` shows "
                "its state",
                ErrorCode.UNAVAILABLE,
            ) from None
        finally:
            connection.close()
        answer = json.loads(raw) if raw else None
        if response.status != 200:
            message = answer.get("error") if isinstance(answer, dict) else raw.decode(errors="replace")
            code = answer.get("code", ErrorCode.UNAVAILABLE.value) if isinstance(answer, dict) else "unavailable"
            raise TargetError(str(message), code if code in ErrorCode._value2member_map_ else ErrorCode.UNAVAILABLE)
        return answer


def _read_line(fd: int, timeout: float) -> str:
    """One line from a pipe, or what there is when the writer closes or the time is up."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


def _wait_gone(pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid and files.alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.01)


def release_for(project: Project, service: str, version: str) -> Release:
    """The release of ``version`` as deploy.toml describes it (convenience for the CLI and tests)."""
    config = project.config.services.get(service)
    if config is None:
        known = ", ".join(sorted(project.config.services)) or "none"
        raise TargetError(f"unknown service {service!r}; known services: {known}", ErrorCode.UNKNOWN_SERVICE)
    return Release.resolve(service, config, version)


@dataclass
class LocalPlatform(Platform):
    """The local combination, with the parts typed as what they are and the few conveniences only a local
    platform has (the URLs of its router and previews, stopping everything, the environments it knows)."""

    workload: LocalWorkload
    router: LocalTrafficRouter
    prober: LocalProber
    flags: FlagdFile
    metrics: LocalTrafficMetrics | None = None

    @property
    def project(self) -> Project:
        return self.workload.project

    def endpoint(self, service: str, environment: str) -> str:
        """The router's URL: what users of this machine reach."""
        return self.prober.endpoint(service, environment)

    def version_endpoint(self, service: str, environment: str, version: str) -> str:
        """The preview URL of one version."""
        return self.prober.version_endpoint(service, environment, version)

    def stop(self, service: str, environment: str, *, drain_timeout: float = 5.0) -> list[str]:
        return self.workload.stop(service, environment, drain_timeout=drain_timeout)

    def environments(self) -> list[tuple[str, str]]:
        return self.workload.environments()


def create_platform(
    project: Project,
    *,
    health_interval: float = 1.0,
    start_timeout: float = 60.0,
    kill_timeout: float = 5.0,
) -> LocalPlatform:
    """Processes behind the local weighted router (exact weights, a preview of every version, live RED metrics),
    with flags in each service's flagd file."""
    workload = LocalWorkload(
        project, health_interval=health_interval, start_timeout=start_timeout, kill_timeout=kill_timeout
    )
    return LocalPlatform(
        workload=workload,
        router=LocalTrafficRouter(workload),
        prober=LocalProber(workload),
        flags=FlagdFile(project),
        metrics=LocalTrafficMetrics(workload),
    )

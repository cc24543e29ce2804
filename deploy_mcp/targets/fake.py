"""An in-memory platform: plans, the runner and the analysis exercised in milliseconds, without processes.

It keeps the contract (core.platform) the way a real driver must, which the conformance suite checks: the first
version gets all traffic, a new one none, weights are refused for a version with no ready instance, stopping a
version that still serves is refused, every error is a TargetError with its code. Its router is either exact
(like the local router or a Gateway API HTTPRoute) or replica ratios (like a Kubernetes Service selecting pods with
no router): it serves either one version alone or every version in proportion to its ready instances.

Knobs make a version misbehave the way real releases do (``behave``): it crash-loops or never becomes ready at
start, its instances fail their health checks, some paths answer 500, its requests fail at a given rate or are
slow (the metrics the analysis reads). The router can refuse weights, or accept them and not apply them (a router
that lies, which the runner must catch by reading the split back). ``calls`` records every changing call, so a
test can compare what ran with the plan.

Probes are real HTTP exchanges through ``httpx.MockTransport``: the smoke and health code under test is the code
that runs against a real platform.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.platform import Platform, RouterCapabilities, proportional
from deploy_mcp.core.target import (
    ErrorCode,
    InstanceHealth,
    InstancePhase,
    InstanceState,
    MetricSnapshot,
    Release,
    TargetError,
    TargetState,
    VersionState,
    check_weights,
)

if TYPE_CHECKING:
    import httpx

FAKE = "fake"


@dataclass
class Behaviour:
    """How one version of a service behaves on the fake platform (every service, every environment)."""

    crash_loop: bool = False
    """start_version fails with crash_loop and leaves nothing running (as the local platform refuses it)."""
    never_ready: bool = False
    """start_version (and growing it) fails with health_timeout: the instances never pass their health check."""
    unhealthy: bool = False
    """Instances run and take traffic, but their health checks fail (503 with status "failing")."""
    failing_paths: frozenset[str] = frozenset()
    """Paths that answer 500 on this version."""
    error_rate: float = 0.0
    """Share of requests that fail, in the metrics."""
    latency_ms: float = 20.0
    """p50 latency in the metrics; p95 is 1.5x, p99 2x."""


@dataclass
class _Version:
    release: Release
    replicas: int
    ready: int
    restarts: int = 0


@dataclass
class _Environment:
    versions: dict[str, _Version] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    """Exact router: the split. Replica ratios: unused (see ``selected``)."""
    selected: str | None = None
    """Replica ratios: the one version the service selects, or None for every version (by ready instances)."""
    flags: dict[str, int] = field(default_factory=dict)


class FakeState:
    """Everything the fake platform holds, shared by its parts; one lock, since the runner calls from threads."""

    def __init__(self, services: Mapping[str, list[str]] | None) -> None:
        self.services = {name: list(envs) for name, envs in (services or {}).items()} or None
        self.environments: dict[tuple[str, str], _Environment] = {}
        self.behaviour: dict[str, Behaviour] = {}
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.RLock()

    def environment(self, service: str, environment: str) -> _Environment:
        if self.services is not None:
            if service not in self.services:
                known = ", ".join(sorted(self.services)) or "none"
                raise TargetError(f"unknown service {service!r}; known services: {known}", ErrorCode.UNKNOWN_SERVICE)
            if environment not in self.services[service]:
                known = ", ".join(sorted(self.services[service])) or "none"
                raise TargetError(
                    f"service {service!r} has no environment {environment!r}; known: {known}",
                    ErrorCode.UNKNOWN_ENVIRONMENT,
                )
        return self.environments.setdefault((service, environment), _Environment())

    def behaves(self, version: str) -> Behaviour:
        return self.behaviour.get(version, Behaviour())


class FakeWorkload:
    kind = FAKE

    def __init__(self, shared: FakeState, router: FakeRouter) -> None:
        self.shared = shared
        self.router = router

    def state(self, service: str, environment: str) -> TargetState:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            weights = self.router.split(env)
            versions = []
            for name, version in env.versions.items():
                instances = [
                    InstanceState(
                        id=f"{name}-{n}",
                        version=name,
                        phase=InstancePhase.READY if n < version.ready else InstancePhase.STARTING,
                    )
                    for n in range(version.replicas)
                ]
                versions.append(
                    VersionState(
                        version=name,
                        replicas=version.replicas,
                        ready=version.ready,
                        weight=weights.get(name, 0),
                        restarts=version.restarts,
                        instances=instances,
                    )
                )
            return TargetState(
                service=service, environment=environment, kind=FAKE, running=bool(env.versions), versions=versions
            )

    def start_version(
        self, service: str, environment: str, release: Release, replicas: int, *, timeout: float | None = None
    ) -> None:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            self.shared.calls.append(("start_version", release.version, str(replicas)))
            if replicas < 1:
                raise TargetError(f"replicas must be at least 1, got {replicas}", ErrorCode.INVALID_WEIGHTS)
            if release.version in env.versions:
                raise TargetError(
                    f"{service}/{environment} already runs {release.version}; scale it instead",
                    ErrorCode.ALREADY_RUNNING,
                )
            behaviour = self.shared.behaves(release.version)
            if behaviour.crash_loop:
                raise TargetError(
                    f"{service}/{environment} {release.version}: every instance exited right after it started "
                    "(crash loop); nothing of it was left running",
                    ErrorCode.CRASH_LOOP,
                )
            if behaviour.never_ready:
                raise TargetError(
                    f"{service}/{environment} {release.version}: no instance passed its health check within "
                    f"{timeout or 60:g} s; nothing of it was left running",
                    ErrorCode.HEALTH_TIMEOUT,
                )
            first = not env.versions
            env.versions[release.version] = _Version(release=release, replicas=replicas, ready=replicas)
            if first:
                env.weights = {release.version: 100}
                env.selected = release.version

    def scale(
        self, service: str, environment: str, version: str, replicas: int, *, timeout: float | None = None
    ) -> None:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            self.shared.calls.append(("scale", version, str(replicas)))
            if replicas < 0:
                raise TargetError(f"replicas cannot be negative, got {replicas}", ErrorCode.INVALID_WEIGHTS)
            found = self._version(service, environment, env, version)
            if replicas > found.replicas and self.shared.behaves(version).never_ready:
                raise TargetError(
                    f"{service}/{environment} {version}: the new instances did not pass their health check",
                    ErrorCode.HEALTH_TIMEOUT,
                )
            found.replicas = found.ready = replicas

    def stop_version(self, service: str, environment: str, version: str, *, drain_timeout: float = 10.0) -> None:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            self.shared.calls.append(("stop_version", version))
            self._version(service, environment, env, version)
            weights = self.router.split(env)
            others_ready = any(v.ready > 0 for name, v in env.versions.items() if name != version)
            if weights.get(version, 0) > 0 and others_ready:
                raise TargetError(
                    f"{service}/{environment} {version} still takes {weights[version]}% of traffic; move it to "
                    "another version first",
                    ErrorCode.STILL_SERVING,
                )
            del env.versions[version]
            env.weights.pop(version, None)
            if env.selected == version:
                env.selected = None

    @staticmethod
    def _version(service: str, environment: str, env: _Environment, version: str) -> _Version:
        found = env.versions.get(version)
        if found is None:
            known = ", ".join(env.versions) or "none"
            raise TargetError(
                f"{service}/{environment} has no version {version} running (running: {known})",
                ErrorCode.UNKNOWN_VERSION,
            )
        return found


class FakeRouter:
    def __init__(self, shared: FakeState, capabilities: RouterCapabilities) -> None:
        self.shared = shared
        self.capabilities = capabilities
        self.refuse_weights = False
        """set_weights raises (unavailable), as a router whose API is down."""
        self.ignore_weights = False
        """set_weights returns as if done and changes nothing, as a router that lies; verify_weights tells."""

    def split(self, env: _Environment) -> dict[str, int]:
        """The split in force, every known version included."""
        if self.capabilities.exact_weights:
            return {name: env.weights.get(name, 0) for name in env.versions}
        if env.selected is not None and env.selected in env.versions:
            return {name: 100 if name == env.selected else 0 for name in env.versions}
        ready = proportional({name: v.ready for name, v in env.versions.items()})
        return {name: ready.get(name, 0) for name in env.versions}

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            self.shared.calls.append(("set_weights", json.dumps(dict(weights), sort_keys=True)))
            where = f"{service}/{environment}"
            full = check_weights(weights, {name: v.ready for name, v in env.versions.items()}, where)
            if self.refuse_weights:
                raise TargetError(f"{where}: the traffic router refused the change (fake knob)", ErrorCode.UNAVAILABLE)
            if self.ignore_weights:
                return
            if self.capabilities.exact_weights:
                env.weights = full
                return
            serving = [name for name, weight in full.items() if weight > 0]
            if len(serving) == 1:
                env.selected = serving[0]
                return
            possible = proportional({name: v.ready for name, v in env.versions.items()})
            if any(abs(possible.get(name, 0) - weight) > 1 for name, weight in full.items()):
                shown = ", ".join(f"{name}={weight}%" for name, weight in sorted(possible.items()))
                raise TargetError(
                    f"{where}: this platform splits traffic by ready instances, so the only split between these "
                    f"versions is {shown}; scale them to change it",
                    ErrorCode.INVALID_WEIGHTS,
                )
            env.selected = None

    def verify_weights(self, service: str, environment: str) -> dict[str, int]:
        with self.shared.lock:
            return self.split(self.shared.environment(service, environment))


class FakeProber:
    def __init__(self, shared: FakeState, router: FakeRouter, health_path: str) -> None:
        self.shared = shared
        self.router = router
        self.health_path = health_path
        self._turns: dict[tuple[str, str], int] = {}

    def http_client(self, service: str, environment: str, version: str | None = None) -> httpx.Client:
        import httpx

        with self.shared.lock:
            env = self.shared.environment(service, environment)
            if version is not None:
                if not self.router.capabilities.preview:
                    raise TargetError(
                        f"{service}/{environment}: this platform cannot reach one version alone (no preview); "
                        "probe its instances with health() instead",
                        ErrorCode.NO_PREVIEW,
                    )
                FakeWorkload._version(service, environment, env, version)
        host = f"{version}.{service}.{environment}.fake" if version else f"{service}.{environment}.fake"

        def answer(request: httpx.Request) -> httpx.Response:
            return self._answer(service, environment, version, request)

        return httpx.Client(transport=httpx.MockTransport(answer), base_url=f"http://{host}", timeout=10.0)

    def _answer(self, service: str, environment: str, version: str | None, request: httpx.Request) -> httpx.Response:
        import httpx

        with self.shared.lock:
            env = self.shared.environments.get((service, environment), _Environment())
            chosen = version if version in env.versions else None
            if version is None:
                chosen = self._pick(service, environment, self.router.split(env))
            if chosen is None or env.versions[chosen].ready == 0:
                return httpx.Response(503, text="no ready instance\n")
            behaviour = self.shared.behaves(chosen)
        headers = {"X-Deploy-Version": chosen}
        path = request.url.path
        if path in behaviour.failing_paths:
            return httpx.Response(500, text="internal error\n", headers=headers)
        if path == self.health_path:
            status = "failing" if behaviour.unhealthy else "ok"
            return httpx.Response(
                503 if behaviour.unhealthy else 200, json={"status": status, "version": chosen}, headers=headers
            )
        if path == "/":
            return httpx.Response(200, text=f"hello from {chosen}\n", headers=headers)
        if path == "/api/status":
            return httpx.Response(200, json={"version": chosen}, headers=headers)
        return httpx.Response(404, text="not found\n", headers=headers)

    def _pick(self, service: str, environment: str, weights: Mapping[str, int]) -> str | None:
        """Deterministic weighted choice: request n goes to the version whose cumulative share covers n % 100."""
        turn = self._turns.get((service, environment), 0)
        self._turns[(service, environment)] = turn + 1
        point = turn % 100
        for name, weight in weights.items():
            if point < weight:
                return name
            point -= weight
        return None

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            if not env.versions:
                raise TargetError(
                    f"{service}/{environment} is not running; start a version first", ErrorCode.NOT_RUNNING
                )
            if version is not None:
                FakeWorkload._version(service, environment, env, version)
            probes = []
            for name, found in env.versions.items():
                if version is not None and name != version:
                    continue
                unhealthy = self.shared.behaves(name).unhealthy
                for n in range(found.ready):
                    probes.append(
                        InstanceHealth(
                            instance=f"{name}-{n}",
                            version=name,
                            healthy=not unhealthy,
                            status_code=503 if unhealthy else 200,
                            status="failing" if unhealthy else "ok",
                            detail=f"{name}-{n} answered " + ('503 with status "failing"' if unhealthy else "200"),
                        )
                    )
            return probes


class FakeFlags:
    def __init__(self, shared: FakeState) -> None:
        self.shared = shared

    def set_flag(self, service: str, environment: str, flag: str, percentage: int) -> str:
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            raise TargetError(
                f"flag {flag!r}: the percentage must be a whole number from 0 to 100, got {percentage!r}",
                ErrorCode.INVALID_WEIGHTS,
            )
        with self.shared.lock:
            self.shared.environment(service, environment).flags[flag] = percentage
            self.shared.calls.append(("set_flag", flag, str(percentage)))
        return f"the fake flag store of {service}/{environment}"

    def get_flag(self, service: str, environment: str, flag: str) -> int | None:
        with self.shared.lock:
            return self.shared.environment(service, environment).flags.get(flag)


class FakeMetrics:
    """RED numbers as a router would count them: requests in proportion to each version's share of traffic."""

    def __init__(self, shared: FakeState, router: FakeRouter) -> None:
        self.shared = shared
        self.router = router
        self.requests_per_second = 50.0

    def metrics(self, service: str, environment: str, window_seconds: float) -> dict[str, MetricSnapshot]:
        with self.shared.lock:
            env = self.shared.environment(service, environment)
            if not env.versions:
                raise TargetError(
                    f"{service}/{environment} is not running; start a version first", ErrorCode.NOT_RUNNING
                )
            split = self.router.split(env)
            snapshots = {}
            for name in env.versions:
                behaviour = self.shared.behaves(name)
                requests = round(self.requests_per_second * window_seconds * split.get(name, 0) / 100)
                errors = round(requests * behaviour.error_rate)
                latency = behaviour.latency_ms if requests else None
                snapshots[name] = MetricSnapshot(
                    version=name,
                    window_seconds=window_seconds,
                    requests=requests,
                    errors=errors,
                    error_rate=errors / requests if requests else 0.0,
                    p50_ms=latency,
                    p95_ms=latency * 1.5 if latency is not None else None,
                    p99_ms=latency * 2 if latency is not None else None,
                    requests_per_second=requests / window_seconds if window_seconds else 0.0,
                )
            return snapshots


@dataclass
class FakePlatform(Platform):
    """The fake combination, with its knobs."""

    workload: FakeWorkload
    router: FakeRouter
    prober: FakeProber
    flags: FakeFlags
    metrics: FakeMetrics | None = None
    shared: FakeState = field(default_factory=lambda: FakeState(None))

    def behave(self, version: str, **knobs: Any) -> Behaviour:
        """Make ``version`` misbehave (see Behaviour); returns its behaviour now."""
        with self.shared.lock:
            current = self.shared.behaves(version)
            updated = Behaviour(**{**current.__dict__, **knobs})
            if "failing_paths" in knobs:
                updated.failing_paths = frozenset(knobs["failing_paths"])
            self.shared.behaviour[version] = updated
            return updated

    @property
    def calls(self) -> list[tuple[str, ...]]:
        with self.shared.lock:
            return list(self.shared.calls)


def create_fake_platform(
    *,
    exact_weights: bool = True,
    preview: bool = True,
    metrics: bool = True,
    health_path: str = "/health",
    services: Mapping[str, list[str]] | None = None,
) -> FakePlatform:
    """A fresh, empty fake platform. ``services`` (name -> environments) makes unknown names errors, as a driver
    that reads deploy.toml refuses them; without it every name is accepted."""
    shared = FakeState(services)
    router = FakeRouter(shared, RouterCapabilities(exact_weights=exact_weights, preview=preview))
    return FakePlatform(
        workload=FakeWorkload(shared, router),
        router=router,
        prober=FakeProber(shared, router, health_path),
        flags=FakeFlags(shared),
        metrics=FakeMetrics(shared, router) if metrics else None,
        shared=shared,
    )


def create_platform(project: Any, service_name: str) -> FakePlatform:
    """The driver entry point the registry calls, for completeness: a fake platform knowing the project's
    services and environments, with the service's health path."""
    services = {name: list(service.environments) for name, service in project.config.services.items()}
    health = project.config.services[service_name].health
    return create_fake_platform(services=services, health_path=health)

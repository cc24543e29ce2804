"""What each plan action does to a platform, written so that running it twice does no harm.

Idempotence is what makes resuming safe: a process killed in the middle of a step leaves the ledger saying
"step 4 running", and whoever resumes simply runs step 4 again. So ``start`` of a version that already runs
only tops it up, ``stop`` of a version that is gone does nothing, and weights are set absolutely.

"Traffic follows instances": a plan that never sets weights (rolling, recreate) means each version serves in
proportion to its ready instances, which Kubernetes does by itself; on a platform with exact weights the runner
sets them after every size change, and moves a version's share away before shrinking or stopping it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy_mcp.config.schema import Service
from deploy_mcp.core.plans import PlanStep
from deploy_mcp.core.runner.base import Context, RunnerError
from deploy_mcp.core.target import Release, Target, TargetError, TargetState

READY_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Checks:
    """Health and smoke checks of one URL; ``passed`` says both passed."""

    passed: bool
    health: str
    smoke: str

    @property
    def summary(self) -> str:
        return f"health: {self.health}; smoke: {self.smoke}"


class Actions:
    """The platform side of each step, for one service and environment."""

    def __init__(self, ctx: Context, service: str, environment: str, *, follow_instances: bool) -> None:
        self.ctx = ctx
        self.service = service
        self.environment = environment
        self.config: Service = ctx.service(service)
        self.target: Target = ctx.targets(service)
        self.follow_instances = follow_instances and self.target.capabilities.weighted_traffic

    def state(self) -> TargetState:
        return self.target.state(self.service, self.environment)

    def release(self, version: str) -> Release:
        return Release.resolve(self.service, self.config, version)

    # -- instances ---------------------------------------------------------------------------------------------

    def start(self, version: str, replicas: int, say: Callable[[str], None]) -> None:
        current = self.state().version(version)
        if current is not None and current.running > 0:
            if current.ready >= replicas and current.replicas >= replicas:
                say(f"{version} already runs {current.ready} ready instance(s); nothing to start")
            else:
                say(f"{version} already runs; scaling it to {replicas}")
                self.target.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
        else:
            self.target.start_version(
                self.service, self.environment, self.release(version), replicas, timeout=self.ctx.ready_timeout
            )
        self._rebalance()

    def scale(self, version: str, replicas: int) -> None:
        current = self.state().version(version)
        if current is None:
            raise TargetError(f"{self.service}/{self.environment} has no version {version} to scale; start it first")
        if replicas < current.replicas:
            self._rebalance({version: replicas})
            self.target.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
        else:
            self.target.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
            self._rebalance()

    def wait_ready(self, version: str, replicas: int) -> str:
        """Until ``replicas`` instances of ``version`` pass their health check; raises on a crash loop."""
        deadline = time.monotonic() + self.ctx.ready_timeout
        while True:
            current = self.state().version(version)
            if current is None:
                raise TargetError(f"{version} is not running in {self.service}/{self.environment}")
            if current.crash_loop:
                raise TargetError(
                    f"{version} is in a crash loop ({current.restarts} restart(s)): {current.problem or 'it exits'}"
                )
            if current.ready >= replicas:
                return f"{current.ready} of {replicas} instance(s) of {version} ready"
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"only {current.ready} of {replicas} instance(s) of {version} became ready within "
                    f"{self.ctx.ready_timeout:g} s" + (f": {current.problem}" if current.problem else "")
                )
            time.sleep(READY_POLL_SECONDS)

    def stop(self, version: str) -> bool:
        """False when there was nothing to stop."""
        current = self.state()
        if current.version(version) is None:
            return False
        if current.weights.get(version, 0) > 0:
            self._rebalance({version: 0}, state=current)
        self.target.stop_version(self.service, self.environment, version, drain_timeout=self.ctx.drain_timeout)
        return True

    # -- traffic -------------------------------------------------------------------------------------------------

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.target.set_weights(self.service, self.environment, dict(weights))

    def _rebalance(self, planned: Mapping[str, int] | None = None, *, state: TargetState | None = None) -> None:
        """Keep traffic where the instances are; ``planned`` gives counts about to change (0: about to go).

        With explicit weights (canary, blue-green) only a version about to go has its share moved, to the others
        in proportion to theirs; the plan's own weight steps normally did that already.
        """
        current = state or self.state()
        if self.follow_instances:
            counts = {v.version: v.ready for v in current.versions}
            counts.update(planned or {})
            weights = proportional(counts)
        else:
            going = {v for v, n in (planned or {}).items() if n == 0 and current.weights.get(v, 0) > 0}
            if not going:
                return
            weights = proportional({v: 0 if v in going else w for v, w in current.weights.items()})
        if weights and any(current.weights.get(v, 0) != w for v, w in weights.items()):
            self.set_weights(weights)

    # -- checks and flags ----------------------------------------------------------------------------------------

    def check_version(self, version: str) -> Checks:
        """Health and smoke straight against one version, before it takes traffic."""
        return self.check_url(self.target.version_endpoint(self.service, self.environment, version))

    def check_service(self) -> Checks:
        """Health and smoke through the endpoint users reach."""
        return self.check_url(self.target.endpoint(self.service, self.environment))

    def check_url(self, base_url: str) -> Checks:
        from deploy_mcp.signals.health import check_health
        from deploy_mcp.signals.smoke import run_smoke

        base = base_url.rstrip("/")
        health = check_health(base + self.config.health)
        smoke = run_smoke(base, list(self.config.smoke), health_path=self.config.health)
        return Checks(passed=health.healthy and smoke.passed, health=health.detail, smoke=smoke.summary)

    def set_flag(self, percentage: int) -> Path:
        return write_flag(self.ctx.project.root, self.service, self.config, percentage)


def proportional(counts: Mapping[str, int]) -> dict[str, int]:
    """Whole percentages in proportion to ``counts``, summing to 100 (largest remainder); {} when all are 0."""
    total = sum(max(0, n) for n in counts.values())
    if total == 0:
        return {}
    exact = {v: max(0, n) * 100 / total for v, n in counts.items()}
    weights = {v: int(share) for v, share in exact.items()}
    leftover = 100 - sum(weights.values())
    for version in sorted(exact, key=lambda v: exact[v] - weights[v], reverse=True)[:leftover]:
        weights[version] += 1
    return weights


def write_flag(root: Path, service_name: str, service: Service, percentage: int) -> Path:
    """Set the service's flag in its flagd JSON file (other flags in the file are kept); atomic replace.

    flagd format: the flag is ENABLED with on/off variants; 0% and 100% are the default variant, anything in
    between a ``fractional`` targeting rule that splits users by their targeting key.
    """
    if service.flag is None:
        raise RunnerError(
            f'service {service_name!r} has no feature flag; add [services.{service_name}.flag] with name = "..."'
        )
    path = root / service.flag.file
    try:
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise RunnerError(
            f"services.{service_name}.flag.file {path} is not a readable flagd JSON file: {exc}"
        ) from None
    if not isinstance(document, dict):
        document = {}
    flags = document.setdefault("flags", {})
    flag: dict[str, object] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if percentage >= 100 else "off",
    }
    if 0 < percentage < 100:
        flag["targeting"] = {"fractional": [["on", percentage], ["off", 100 - percentage]]}
    flags[service.flag.name] = flag
    document.setdefault("$schema", "https://flagd.dev/schema/v0/flags.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def describe_step(step: PlanStep) -> str:
    return f"step {step.index} ({step.action}): {step.description}"

"""What each plan action does to a platform, written so that running it twice does no harm.

Idempotence is what makes resuming safe: a process killed in the middle of a step leaves the ledger saying
"step 4 running", and whoever resumes simply runs step 4 again. So ``start`` of a version that already runs
only tops it up, ``stop`` of a version that is gone does nothing, and weights are set absolutely.

"Traffic follows instances": a plan that never sets weights (rolling, recreate) means each version serves in
proportion to its ready instances. The runner sets that split after every size change (on a router with exact
weights it also moves a version's share away before shrinking it; a router whose weights are replica ratios drains
by itself), and moves a version's whole share away before stopping it.

Every platform call of a deployment, an undo included, goes through this class, and through the platform's parts:
the workload for instances, the router for weights (read back after every change: a router that did not apply a
split is an error, not a hope), the prober for every health and smoke request, the flag provider for flags.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy_mcp.config.schema import Service
from deploy_mcp.core.plans import CheckVia, PlanStep
from deploy_mcp.core.platform import Platform, proportional, same_split
from deploy_mcp.core.runner.base import Context, RunnerError
from deploy_mcp.core.target import ErrorCode, Release, TargetError, TargetState

if TYPE_CHECKING:
    import httpx

READY_POLL_SECONDS = 0.2
VERIFY_SECONDS = 10.0
"""How long a router may take to show a split it accepted (a Service's endpoints follow pods within seconds)."""


@dataclass(frozen=True)
class Checks:
    """Health and smoke checks of the service or of one version; ``passed`` says both passed."""

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
        self.platform: Platform = ctx.platforms(service)
        self.workload = self.platform.workload
        self.router = self.platform.router
        self.follow_instances = follow_instances

    def state(self) -> TargetState:
        return self.workload.state(self.service, self.environment)

    deployment_id: str | None = None
    """The deployment these actions serve; platforms label what they create with it."""

    def release(self, version: str) -> Release:
        release = Release.resolve(self.service, self.config, version)
        return release.model_copy(update={"deployment_id": self.deployment_id}) if self.deployment_id else release

    # -- instances ---------------------------------------------------------------------------------------------

    def start(self, version: str, replicas: int, say: Callable[[str], None]) -> None:
        current = self.state().version(version)
        if current is not None and current.running > 0:
            if current.ready >= replicas and current.replicas >= replicas:
                say(f"{version} already runs {current.ready} ready instance(s); nothing to start")
            else:
                say(f"{version} already runs; scaling it to {replicas}")
                self.workload.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
        else:
            self.workload.start_version(
                self.service, self.environment, self.release(version), replicas, timeout=self.ctx.ready_timeout
            )
        self._rebalance()

    def scale(self, version: str, replicas: int) -> None:
        current = self.state().version(version)
        if current is None:
            raise TargetError(f"{self.service}/{self.environment} has no version {version} to scale; start it first")
        if replicas < current.replicas:
            self._rebalance({version: replicas})
            self.workload.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
        else:
            self.workload.scale(self.service, self.environment, version, replicas, timeout=self.ctx.ready_timeout)
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

    # -- the platform's own rollouts (a Kubernetes Deployment's RollingUpdate or Recreate) -----------------------

    def rollout(self, version: str, replicas: int, strategy: str, progress: Callable[[str], None]) -> int:
        """The whole rollout by the platform itself; returns the revision it made."""
        rollout = getattr(self.workload, "rollout", None)
        if rollout is None:
            raise RunnerError(f"the {self.workload.kind} platform has no rollout of its own; plan this strategy again")
        revision: int = rollout(
            self.service,
            self.environment,
            self.release(version),
            replicas,
            strategy="recreate" if strategy == "recreate" else "rolling",
            timeout=self.ctx.ready_timeout,
            progress=progress,
        )
        return revision

    def undo_rollout(self, say: Callable[[str], None]) -> str | None:
        """``kubectl rollout undo`` of the platform's own rollout; the version it went back to (None: cannot)."""
        undo = getattr(self.workload, "undo", None)
        if undo is None:
            return None
        version: str | None = undo(self.service, self.environment, timeout=self.ctx.ready_timeout, progress=say)
        return version

    def stop(self, version: str) -> bool:
        """False when there was nothing to stop."""
        current = self.state()
        if current.version(version) is None:
            return False
        if current.weights.get(version, 0) > 0:
            self._rebalance({version: 0}, state=current)
        self.workload.stop_version(self.service, self.environment, version, drain_timeout=self.ctx.drain_timeout)
        return True

    # -- traffic -------------------------------------------------------------------------------------------------

    def set_weights(self, weights: Mapping[str, int]) -> dict[str, int]:
        """Set a split and read it back from the platform; returns the split in force.

        A router with exact weights must show exactly what was asked; one whose weights are replica ratios may
        differ by a point of rounding. Anything else, within VERIFY_SECONDS, is a TargetError (weights_not_applied)
        that fails the step: traffic is not where the plan said, so nothing may be judged on it.
        """
        asked = dict(weights)
        self.router.set_weights(self.service, self.environment, asked)
        tolerance = 0 if self.router.capabilities.exact_weights else 1
        deadline = time.monotonic() + VERIFY_SECONDS
        while True:
            applied = self.router.verify_weights(self.service, self.environment)
            if same_split(asked, applied, tolerance=tolerance):
                return applied
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"the traffic router of {self.service}/{self.environment} did not apply the split: asked "
                    f"{_split(asked)}, the platform reports {_split(applied)}",
                    ErrorCode.WEIGHTS_NOT_APPLIED,
                )
            time.sleep(READY_POLL_SECONDS)

    def _rebalance(self, planned: Mapping[str, int] | None = None, *, state: TargetState | None = None) -> None:
        """Keep traffic where the instances are; ``planned`` gives counts about to change (0: about to go).

        With explicit weights (canary, blue-green) only a version about to go has its share moved, to the others
        in proportion to theirs; the plan's own weight steps normally did that already. A router without exact
        weights can only make the ready-instance ratio of the versions it serves, so that is what it is given, and a
        size about to shrink is left to the platform (it drains an instance before removing it).
        """
        current = state or self.state()
        exact = self.router.capabilities.exact_weights
        planned = dict(planned or {})
        if self.follow_instances:
            counts = {v.version: v.ready for v in current.versions}
            if exact:
                counts.update(planned)
            else:
                counts = {v: n for v, n in counts.items() if planned.get(v) != 0}
            weights = proportional(counts)
        else:
            going = {v for v, n in planned.items() if n == 0 and current.weights.get(v, 0) > 0}
            if not going:
                return
            staying = {v: w for v, w in current.weights.items() if v not in going and w > 0}
            if not exact:
                staying = {v.version: v.ready for v in current.versions if v.version in staying}
            weights = proportional({**dict.fromkeys(going, 0), **staying})
        if weights and any(current.weights.get(v, 0) != w for v, w in weights.items()):
            self.set_weights(weights)

    # -- checks and flags ----------------------------------------------------------------------------------------

    def check(self, version: str | None, via: CheckVia | None = None) -> Checks:
        """The checks of a plan's ``check`` step: through the preview, the instances, or the service."""
        if via is CheckVia.SERVICE or version is None:
            return self.check_service()
        if via is CheckVia.INSTANCES or not self.router.capabilities.preview:
            return self.check_instances(version)
        return self.check_version(version)

    def check_version(self, version: str) -> Checks:
        """Health and smoke straight against one version (its preview), before it takes traffic."""
        with self.platform.prober.http_client(self.service, self.environment, version) as client:
            return self._redacted(self._check_through(client))

    def check_service(self) -> Checks:
        """Health and smoke as users reach the service."""
        with self.platform.prober.http_client(self.service, self.environment) as client:
            return self._redacted(self._check_through(client))

    def check_instances(self, version: str) -> Checks:
        """Without a preview: every instance of ``version`` probed by the platform; the smoke tests cannot reach
        this version alone, so they wait for the checks through the service (said so, not passed silently)."""
        from deploy_mcp.signals.health import check_instances

        summary = check_instances(self.platform, self.service, self.environment, version)
        smoke = (
            "not run against this version alone: the platform has no preview, so they run through the service "
            "once it takes traffic"
        )
        return self._redacted(Checks(passed=summary.healthy, health=summary.detail, smoke=smoke))

    def _redacted(self, checks: Checks) -> Checks:
        """The checks as they may be recorded: an answer that echoes the service's env (an error page printing its
        configuration) must not carry it into the deployment's reason, its events and the ledger."""
        from deploy_mcp.core.masking import redact_output, service_secrets

        secrets = service_secrets(self.config)
        return Checks(checks.passed, redact_output(checks.health, secrets), redact_output(checks.smoke, secrets))

    def _check_through(self, client: httpx.Client) -> Checks:
        from deploy_mcp.signals.health import check_health
        from deploy_mcp.signals.smoke import run_smoke

        health = check_health(client, self.config.health)
        smoke = run_smoke(client, list(self.config.smoke), health_path=self.config.health)
        return Checks(passed=health.healthy and smoke.passed, health=health.detail, smoke=smoke.summary)

    def set_flag(self, percentage: int) -> str:
        """Move the service's flag where the service reads it; returns where that was."""
        flag = self.config.flag
        if flag is None:
            raise RunnerError(
                f'service {self.service!r} has no feature flag; add [services.{self.service}.flag] with name = "..."'
            )
        return self.platform.flags.set_flag(self.service, self.environment, flag.name, percentage)


def _split(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{v}={w}%" for v, w in sorted(weights.items())) or "no split"


__all__ = ["Actions", "Checks", "describe_step", "proportional"]


def describe_step(step: PlanStep) -> str:
    return f"step {step.index} ({step.action}): {step.description}"

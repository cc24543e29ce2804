"""`deploy-mcp local status` and `deploy-mcp local stop`, as plain functions the CLI wires in.

Both work from the state files, so they also show and clean up what a dead supervisor left behind, and they
accept services or environments that are no longer in deploy.toml.
"""

from __future__ import annotations

from deploy_mcp.config.loader import Project
from deploy_mcp.core.target import ErrorCode, InstancePhase, TargetError, TargetState
from deploy_mcp.targets.local.platform import LocalWorkload


def status(project: Project) -> str:
    """Every service and environment with local state: versions, weights, instances and their health."""
    target = LocalWorkload(project)
    pairs = target.environments()
    if not pairs:
        return "Nothing runs on the local platform for this project."
    return "\n\n".join(_render(_state(target, service, environment)) for service, environment in pairs)


def _state(target: LocalWorkload, service: str, environment: str) -> TargetState:
    try:
        return target.state(service, environment)
    except TargetError as exc:
        return TargetState(service=service, environment=environment, kind="local", running=False, problem=str(exc))


def _render(state: TargetState) -> str:
    where = f"{state.service}/{state.environment}"
    if state.running:
        lines = [f"{where}  router {state.endpoint}  (/metrics for Prometheus)"]
    else:
        lines = [f"{where}  not running"]
    if state.problem:
        lines.append(f"  problem: {state.problem}")
    if not state.versions:
        lines.append("  no versions")
        return "\n".join(lines)
    lines.append(f"  {'VERSION':<16}{'WEIGHT':>7}{'READY':>8}{'RESTARTS':>10}  HEALTH")
    for version in state.versions:
        if version.problem:
            health = ("crash loop: " if version.crash_loop else "") + version.problem
        elif version.ready == version.replicas and version.replicas:
            health = "ok"
        else:
            health = "degraded" if version.ready else "no ready instance"
        lines.append(
            f"  {version.version:<16}{version.weight:>6}%{version.ready:>4}/{version.replicas:<3}"
            f"{version.restarts:>10}  {health}"
        )
        if version.endpoint:
            lines.append(f"    preview {version.endpoint}")
        for instance in version.instances:
            detail = f"pid {instance.pid}" if instance.pid else "no process"
            if instance.port:
                detail += f", port {instance.port}"
            if instance.restarts:
                detail += f", {instance.restarts} restarts"
            if instance.last_error and instance.phase is not InstancePhase.READY:
                detail += f", {instance.last_error}"
            lines.append(f"    {instance.id:<20}{instance.phase.value:<10}{detail}")
    return "\n".join(lines)


def stop(project: Project, service: str, environment: str | None = None) -> str:
    """Stop a service's instances and router in one environment, or in every environment that has any."""
    target = LocalWorkload(project)
    running = [env for svc, env in target.environments() if svc == service]
    if environment is not None:
        configured = project.config.services.get(service)
        if environment not in running and (configured is None or environment not in configured.environments):
            known = sorted(set(running) | set(configured.environments if configured else ()))
            raise TargetError(
                f"{service} has no environment {environment!r} on the local platform; known: "
                f"{', '.join(known) or 'none'}",
                ErrorCode.UNKNOWN_ENVIRONMENT,
            )
        environments = [environment]
    elif running:
        environments = running
    else:
        if service not in project.config.services:
            known = sorted({svc for svc, _ in target.environments()} | set(project.config.services))
            raise TargetError(
                f"unknown service {service!r}; known services: {', '.join(known) or 'none'}",
                ErrorCode.UNKNOWN_SERVICE,
            )
        return f"Nothing of {service} runs on the local platform."
    lines = []
    for env in environments:
        stopped = target.stop(service, env)
        if stopped:
            lines.append(f"Stopped {service}/{env}: " + ", ".join(stopped))
        else:
            lines.append(f"Nothing of {service}/{env} was running.")
    return "\n".join(lines)

"""What runs in one environment, read from AWS: the ECS service of each version, its primary deployment, its
target group's health, and the listener's weights. Every part of the platform reads through here, so a state
never mixes what was asked with what AWS reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deploy_mcp.core.target import ErrorCode, TargetError
from deploy_mcp.targets.ecs.aws import Aws, calling
from deploy_mcp.targets.ecs.layout import TAG_VERSION, Place, Slot

HEALTHY = "healthy"


def circuit_breaker_threshold(desired: int) -> int:
    """ECS's deployment circuit breaker: half the desired count, at least 3, at most 200 failed tasks."""
    return min(200, max(3, math.ceil(desired * 0.5)))


@dataclass
class Target:
    """One task as the ALB sees it: registered in the slot's target group, with the health check's verdict."""

    id: str
    port: int | None
    state: str
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.id}:{self.port}" if self.port else self.id

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY


@dataclass
class RunningVersion:
    """One version: its ECS service and what AWS says of it."""

    version: str
    slot: Slot
    name: str
    desired: int
    running: int
    task_definition: str
    created: datetime | None
    deployment: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    @property
    def healthy(self) -> int:
        return sum(1 for t in self.targets if t.healthy)

    @property
    def failed_tasks(self) -> int:
        return int(self.deployment.get("failedTasks") or 0)

    @property
    def rollout_state(self) -> str:
        return str(self.deployment.get("rolloutState") or "")

    @property
    def crash_loop(self) -> bool:
        """What ECS's circuit breaker decides: the rollout FAILED, or enough tasks failed to trip it."""
        return self.rollout_state == "FAILED" or self.failed_tasks >= circuit_breaker_threshold(self.desired)

    @property
    def problem(self) -> str | None:
        if not self.crash_loop and not self.failed_tasks:
            return None
        parts = [f"{self.failed_tasks} task(s) failed"]
        if self.deployment.get("rolloutStateReason"):
            parts.append(str(self.deployment["rolloutStateReason"]))
        if self.events:
            parts.append(self.events[0])
        return "; ".join(parts)


def _tags(described: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in described.get("tags") or [] if "key" in t}


class Fleet:
    """Reads one environment's versions and weights from AWS."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._released: dict[str, str | None] = {}  # task definition ARN -> version (revisions are immutable)

    def version_of(self, task_definition: str) -> str | None:
        """The version a task definition revision runs: its deploy-mcp.version tag (set when it was registered)."""
        if task_definition not in self._released:
            with calling(f"reading task definition {task_definition}"):
                answer = self.aws.ecs.describe_task_definition(taskDefinition=task_definition, include=["TAGS"])
            self._released[task_definition] = _tags(answer).get(TAG_VERSION)
        return self._released[task_definition]

    def services(self, place: Place) -> list[dict[str, Any]]:
        """The ACTIVE ECS services deploy-mcp made for this environment (by name prefix), described with tags."""
        ecs = self.aws.ecs
        with calling(f"{place.where}: listing ECS services"):
            names = []
            for page in ecs.get_paginator("list_services").paginate(cluster=place.cluster):
                names += [arn.rsplit("/", 1)[-1] for arn in page.get("serviceArns", [])]
            names = [n for n in names if n.startswith(place.prefix)]
            described: list[dict[str, Any]] = []
            for start in range(0, len(names), 10):
                answer = ecs.describe_services(
                    cluster=place.cluster, services=names[start : start + 10], include=["TAGS"]
                )
                described += answer.get("services", [])
        return [s for s in described if s.get("status") == "ACTIVE"]

    def targets(self, place: Place, slot: Slot) -> list[Target]:
        with calling(f"{place.where}: reading the health of target group {slot}"):
            answer = self.aws.elbv2.describe_target_health(TargetGroupArn=place.target_group(slot))
        found = []
        for item in answer.get("TargetHealthDescriptions", []):
            health = item.get("TargetHealth", {})
            state = health.get("State", "")
            if state in {"unused"}:
                continue
            target = item.get("Target", {})
            found.append(Target(target.get("Id", "?"), target.get("Port"), state, health.get("Description", "")))
        return found

    def versions(self, place: Place, *, with_targets: bool = True) -> list[RunningVersion]:
        found = []
        for described in self.services(place):
            tags = _tags(described)
            # the running task definition says which version runs: after a native rollout, or ECS's own rollback
            # by the circuit breaker, it is not the one the service was created with
            version = (self.version_of(described["taskDefinition"]) if described.get("taskDefinition") else None) or (
                tags.get(TAG_VERSION)
            )
            slot = next(
                (
                    place.slot_of(lb.get("targetGroupArn", ""))
                    for lb in described.get("loadBalancers", [])
                    if place.slot_of(lb.get("targetGroupArn", ""))
                ),
                None,
            )
            if version is None or slot is None:
                continue  # not ours, or not behind this environment's target groups
            deployments = described.get("deployments") or []
            primary = next(
                (d for d in deployments if d.get("status") == "PRIMARY"), deployments[0] if deployments else {}
            )
            events = [e.get("message", "") for e in (described.get("events") or [])[:3]]
            found.append(
                RunningVersion(
                    version=version,
                    slot=slot,
                    name=described["serviceName"],
                    desired=int(described.get("desiredCount") or 0),
                    running=int(described.get("runningCount") or 0),
                    task_definition=str(described.get("taskDefinition") or ""),
                    created=described.get("createdAt"),
                    deployment=primary,
                    events=events,
                )
            )
        if with_targets:
            for version in found:
                version.targets = self.targets(place, version.slot)
        found.sort(key=lambda v: (v.created is None, v.created or datetime.min, v.version))
        return found

    def version(self, place: Place, version: str) -> RunningVersion:
        for running in self.versions(place):
            if running.version == version:
                return running
        known = ", ".join(v.version for v in self.versions(place, with_targets=False)) or "none"
        raise TargetError(f"{place.where} has no version {version} (running: {known})", ErrorCode.UNKNOWN_VERSION)

    # -- the listener --------------------------------------------------------------------------------------------

    def listener_actions(self, arn: str, what: str) -> list[dict[str, Any]]:
        """The default actions of a listener, or the actions of a listener rule."""
        with calling(what):
            if ":listener-rule/" in arn:
                rules = self.aws.elbv2.describe_rules(RuleArns=[arn]).get("Rules", [])
                return list(rules[0].get("Actions", [])) if rules else []
            listeners = self.aws.elbv2.describe_listeners(ListenerArns=[arn]).get("Listeners", [])
            return list(listeners[0].get("DefaultActions", [])) if listeners else []

    def forward_weights(self, arn: str, what: str) -> dict[str, int]:
        """Target group ARN -> weight of the listener's (or rule's) forward action."""
        for action in self.listener_actions(arn, what):
            if action.get("Type") != "forward":
                continue
            config = action.get("ForwardConfig")
            if config and config.get("TargetGroups"):
                groups = config["TargetGroups"]
                if len(groups) == 1:
                    return {groups[0]["TargetGroupArn"]: 100}
                return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
            if action.get("TargetGroupArn"):
                return {action["TargetGroupArn"]: 100}
        return {}

    def set_forward(self, arn: str, weights: dict[str, int], what: str) -> None:
        """Write a weighted forward to a listener's default action or a rule's actions (weights by target group)."""
        action = {
            "Type": "forward",
            "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": tg, "Weight": w} for tg, w in weights.items()]},
        }
        with calling(what):
            if ":listener-rule/" in arn:
                self.aws.elbv2.modify_rule(RuleArn=arn, Actions=[action])
            else:
                self.aws.elbv2.modify_listener(ListenerArn=arn, DefaultActions=[action])

    def weights(self, place: Place, versions: list[RunningVersion]) -> dict[str, int]:
        """Version -> weight, read from the listener: every running version, zeros included."""
        by_group = self.forward_weights(place.routing.listener, f"{place.where}: reading the listener's weights")
        return {v.version: by_group.get(place.target_group(v.slot), 0) for v in versions}

    def listener_url(self, arn: str, what: str) -> str:
        """How the listener is reached when deploy.toml gives no url: its ALB's DNS name, protocol and port."""
        with calling(what):
            listener = self.aws.elbv2.describe_listeners(ListenerArns=[listener_of(arn)])["Listeners"][0]
            balancer = self.aws.elbv2.describe_load_balancers(LoadBalancerArns=[listener["LoadBalancerArn"]])
        dns = balancer["LoadBalancers"][0]["DNSName"]
        return f"{str(listener.get('Protocol', 'HTTP')).lower()}://{dns}:{listener['Port']}"


def listener_of(arn: str) -> str:
    """The listener of a listener rule's ARN (a listener's ARN is returned as it is)."""
    if ":listener-rule/" not in arn:
        return arn
    head, path = arn.split(":listener-rule/", 1)
    return f"{head}:listener/{path.rsplit('/', 1)[0]}"

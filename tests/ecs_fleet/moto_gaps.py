"""What moto 5.2 cannot represent that the ECS driver must read, and how the harness fills each gap.

The driver only ever talks to the AWS endpoint; these patches live in the moto server the harness runs in its own
process, so what the driver reads over HTTP is what a real account would answer.

- ECS does not run tasks in moto: ``runningCount`` is what update_service last asked for (or 0 at creation), the
  PRIMARY deployment stays IN_PROGRESS, ``failedTasks`` never moves and ``events`` stay empty. The fleet writes
  the numbers of its real processes into moto's Service objects (running/pending counts, the PRIMARY deployment's
  counts, rolloutState COMPLETED or FAILED as ECS's circuit breaker would decide, failedTasks, service events).
- ELBv2 in moto says every registered target is ``healthy`` at once: ``health_for`` is patched to answer the
  fleet's own health-check verdict (initial, healthy, unhealthy, draining) for the targets it registered.
- CloudWatch in moto computes Sum/Average/Minimum/Maximum/SampleCount but no percentile (a ``p95`` query answers
  500): ``Statistics.get_statistics_for_type`` is patched to compute pNN over the published values, the way
  CloudWatch computes extended statistics from raw values.
- update_service with a new task definition does not start a deployment in moto: it is wrapped so that, as on
  ECS, a new PRIMARY deployment (IN_PROGRESS) exists when the call returns, the old one ACTIVE beside it.
- Simplifications of the fleet itself (not of moto): a new task definition's tasks all start at once and the old
  ones go when the new ones are ready (maximumPercent 200, minimumHealthyPercent 100), or the old ones first when
  minimumHealthyPercent is 0 (recreate); a task that exits is restarted in place and counted as one failed task per
  exit, where ECS would start a new task each time.
- A listener change takes effect at once on the emulated ALB: ``modify_listener`` and ``modify_rule`` are wrapped
  so the fleet applies the new forward before the API call returns (a real ALB applies it within seconds; the
  driver reads weights back from the API either way).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")

TargetVerdict = tuple[str, str | None, str | None]
"""(state, reason code, description) as describe_target_health shows them."""


def percentile(values: list[float], stat: str) -> float | None:
    """CloudWatch's pNN over raw values (nearest rank)."""
    match = _PERCENTILE.match(stat)
    if not match or not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(float(match.group(1)) / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@contextlib.contextmanager
def patched(
    health: Callable[[str, str], TargetVerdict | None],
    on_listener_change: Callable[[], None],
    on_service_update: Callable[[Any], None] = lambda service: None,
) -> Iterator[None]:
    """Install the patches for the life of the block; ``health(target_group_arn, target_id)`` answers a verdict or
    None (moto's own answer), ``on_listener_change`` runs after every listener or rule change."""
    from moto.cloudwatch.models import Statistics
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

    original_health = FakeTargetGroup.health_for
    original_stat = Statistics.get_statistics_for_type
    original_modify_listener = ELBv2Backend.modify_listener
    original_modify_rule = ELBv2Backend.modify_rule
    original_update_service = EC2ContainerServiceBackend.update_service

    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        service = original_update_service(self, service_properties)
        on_service_update(service)
        return service

    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        verdict = health(self.arn, target["Id"])
        if verdict is None:
            return original_health(self, target, ec2_backend)
        state, reason, description = verdict
        port = self.targets.get(target["Id"], target).get("Port", self.port)
        return FakeHealthStatus(target["Id"], port, self.health_check_port, state, reason, description)

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if _PERCENTILE.match(stat):
            return percentile(self.metric_single_values_list, stat)
        return original_stat(self, stat)

    def modify_listener(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_modify_listener(self, *args, **kwargs)
        on_listener_change()
        return result

    def modify_rule(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_modify_rule(self, *args, **kwargs)
        on_listener_change()
        return result

    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
    Statistics.get_statistics_for_type = get_statistics_for_type  # type: ignore[method-assign]
    ELBv2Backend.modify_listener = modify_listener  # type: ignore[method-assign]
    ELBv2Backend.modify_rule = modify_rule  # type: ignore[method-assign]
    EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign]
    try:
        yield
    finally:
        FakeTargetGroup.health_for = original_health  # type: ignore[method-assign]
        Statistics.get_statistics_for_type = original_stat  # type: ignore[method-assign]
        ELBv2Backend.modify_listener = original_modify_listener  # type: ignore[method-assign]
        ELBv2Backend.modify_rule = original_modify_rule  # type: ignore[method-assign]
        EC2ContainerServiceBackend.update_service = original_update_service  # type: ignore[method-assign]

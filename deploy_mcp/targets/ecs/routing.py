"""Who gets the requests: the ALB listener's weighted forward action between the two target groups.

Weights are exact (the ALB takes any 0-999 split; we write 0-100), and are read back from the listener itself.
A preview needs a second, test listener: pointing it at one version's target group lets a probe reach that
version alone before it takes traffic.
"""

from __future__ import annotations

from collections.abc import Mapping

from deploy_mcp.core.platform import RouterCapabilities
from deploy_mcp.core.target import ErrorCode, TargetError, check_weights
from deploy_mcp.targets.ecs.fleet import Fleet
from deploy_mcp.targets.ecs.layout import Layout, Slot


class AlbRouter:
    """The TrafficRouter of the platform contract on an Application Load Balancer."""

    def __init__(self, layout: Layout, fleet: Fleet, *, preview: bool) -> None:
        self.layout = layout
        self.fleet = fleet
        self.capabilities = RouterCapabilities(exact_weights=True, preview=preview)

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place)
        ready = {v.version: min(v.healthy, v.running) for v in versions}
        split = check_weights(weights, ready, place.where)
        by_group = {place.target_group(slot): 0 for slot in Slot}
        for running in versions:
            by_group[place.target_group(running.slot)] = split.get(running.version, 0)
        if sum(by_group.values()) != 100:
            raise TargetError(f"{place.where}: the split {split} cannot be made", ErrorCode.INVALID_WEIGHTS)
        current = self.fleet.forward_weights(place.routing.listener, f"{place.where}: reading the listener")
        if all(current.get(tg, 0) == w for tg, w in by_group.items()):
            return
        self.fleet.set_forward(place.routing.listener, by_group, f"{place.where}: setting the listener's weights")

    def verify_weights(self, service: str, environment: str) -> dict[str, int]:
        place = self.layout.place(service, environment)
        return self.fleet.weights(place, self.fleet.versions(place, with_targets=False))

"""Health and smoke through the load balancer: the listener as users reach it, the test listener for one version
alone, and each task's health as the ALB's own health check sees it (describe_target_health)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from deploy_mcp.core.target import ErrorCode, InstanceHealth, TargetError
from deploy_mcp.targets.ecs.fleet import Fleet
from deploy_mcp.targets.ecs.layout import Layout, Place

if TYPE_CHECKING:
    import httpx

CLIENT_TIMEOUT = 10.0


class AlbProber:
    """The Prober of the platform contract on an ALB."""

    def __init__(self, layout: Layout, fleet: Fleet) -> None:
        self.layout = layout
        self.fleet = fleet
        self._urls: dict[str, str] = {}
        self._preview_lock = threading.Lock()

    def _url(self, place: Place, arn: str, configured: str | None) -> str:
        if configured:
            return configured.rstrip("/")
        if arn not in self._urls:
            self._urls[arn] = self.fleet.listener_url(arn, f"{place.where}: finding the listener's address")
        return self._urls[arn]

    def http_client(self, service: str, environment: str, version: str | None = None) -> httpx.Client:
        import httpx

        place = self.layout.place(service, environment)
        if version is None:
            return httpx.Client(
                base_url=self._url(place, place.routing.listener, place.routing.url), timeout=CLIENT_TIMEOUT
            )
        test_listener = place.routing.test_listener
        if not test_listener:
            raise TargetError(
                f"{place.where}: no preview of {version}: add test_listener (a second listener of the ALB) to "
                f"services.{service}.environments.{environment}.ecs",
                ErrorCode.NO_PREVIEW,
            )
        running = self.fleet.version(place, version)
        with self._preview_lock:
            self.fleet.set_forward(
                test_listener,
                {place.target_group(running.slot): 100},
                f"{place.where}: pointing the test listener at {version}",
            )
        return httpx.Client(base_url=self._url(place, test_listener, place.routing.test_url), timeout=CLIENT_TIMEOUT)

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        place = self.layout.place(service, environment)
        versions = self.fleet.versions(place)
        if version is not None:
            versions = [v for v in versions if v.version == version]
            if not versions:
                raise TargetError(f"{place.where} has no version {version}", ErrorCode.UNKNOWN_VERSION)
        return [
            InstanceHealth(
                instance=target.name,
                version=running.version,
                healthy=target.healthy,
                status=target.state,
                detail=target.reason or f"the ALB's health check says {target.state}",
            )
            for running in versions
            for target in running.targets
        ]

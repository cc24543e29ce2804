"""The local platform's traffic side: its weighted router, its prober and its metrics, seen from the server.

All three talk to the supervisor of the service and environment (through ``LocalWorkload.control``), which runs
the router itself (router.py): weights are exact (smooth weighted round-robin), every running version has a
preview port that reaches it alone, and the router counts every request per version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from deploy_mcp.core.platform import EXACT, RouterCapabilities
from deploy_mcp.core.target import ErrorCode, InstanceHealth, MetricSnapshot, TargetError, TargetState

if TYPE_CHECKING:
    import httpx

    from deploy_mcp.targets.local.platform import LocalWorkload

PROBE_TIMEOUT = 10.0
"""The client's default per-request timeout; health and smoke set tighter ones per request."""


class LocalTrafficRouter:
    """The supervisor's weighted router: any 0-100 split, applied at once, read back from the supervisor."""

    capabilities: RouterCapabilities = EXACT

    def __init__(self, workload: LocalWorkload) -> None:
        self.workload = workload

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        self.workload.control(service, environment).call("POST", "/weights", {"weights": dict(weights)})

    def verify_weights(self, service: str, environment: str) -> dict[str, int]:
        state = TargetState.model_validate(self.workload.control(service, environment).call("GET", "/state"))
        return state.weights


class LocalProber:
    """Probes through the router's port (as users) or a version's preview port; instances one by one for health."""

    def __init__(self, workload: LocalWorkload) -> None:
        self.workload = workload

    def http_client(self, service: str, environment: str, version: str | None = None) -> httpx.Client:
        import httpx

        base = (
            self.endpoint(service, environment)
            if version is None
            else self.version_endpoint(service, environment, version)
        )
        return httpx.Client(base_url=base, timeout=PROBE_TIMEOUT, follow_redirects=False)

    def health(self, service: str, environment: str, version: str | None = None) -> list[InstanceHealth]:
        query = f"?version={quote(version, safe='')}" if version else ""
        answer = self.workload.control(service, environment).call("GET", f"/health{query}")
        return [InstanceHealth.model_validate(item) for item in answer]

    def endpoint(self, service: str, environment: str) -> str:
        """The router's URL (local only: other platforms reach a service through their own API)."""
        current = self.workload.state(service, environment)
        if current.endpoint:
            return current.endpoint
        port = self.workload.configured_port(service, environment)
        if port:
            return f"http://127.0.0.1:{port}"
        raise TargetError(
            f"{service}/{environment} is not running and has no fixed port; start a version first",
            ErrorCode.NOT_RUNNING,
        )

    def version_endpoint(self, service: str, environment: str, version: str) -> str:
        """The preview URL of one running version."""
        current = self.workload.state(service, environment)
        found = current.version(version)
        if found is None or not found.endpoint:
            known = ", ".join(v.version for v in current.versions) or "none"
            raise TargetError(
                f"{service}/{environment} has no version {version} running (running: {known})",
                ErrorCode.UNKNOWN_VERSION,
            )
        return found.endpoint


class LocalTrafficMetrics:
    """Per-version RED numbers counted by the router itself: no Prometheus needed on a laptop."""

    def __init__(self, workload: LocalWorkload) -> None:
        self.workload = workload

    def metrics(self, service: str, environment: str, window_seconds: float) -> dict[str, MetricSnapshot]:
        answer = self.workload.control(service, environment).call("GET", f"/metrics?window={float(window_seconds)}")
        return {name: MetricSnapshot.model_validate(item) for name, item in answer.items()}

"""generate_monitoring: the alerts and dashboard that watch a service after it ships, from deploy.toml."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import parse_duration
from deploy_mcp.errors import UserError
from deploy_mcp.monitoring import MonitoringBundle, build_monitoring


def generate_monitoring(
    app: App,
    service: Annotated[str, Field(description="The service (a key of [services] in deploy.toml).")],
    environment: Annotated[str, Field(description="The environment, e.g. production.")],
    scrape_interval: Annotated[
        str,
        Field(description="How often Prometheus scrapes the router (one health check per scrape), e.g. '15s'."),
    ] = "15s",
) -> MonitoringBundle:
    """Prometheus alert rules and a Grafana dashboard for a service in an environment, built from its thresholds
    in deploy.toml. Alerts: HighErrorRate (warning at the warn rate for 5m, critical at the critical rate for
    2m), HighLatency (p95), ServiceDown (3 failed health checks in a row) and AutoRollbackTrigger (labelled
    action=rollback for automation). Dashboard rows: health, trends (p50/p95/p99), resources, deployments (traffic
    per version, with deployments as annotations). Read-only: returns the files' contents and suggested paths,
    writes nothing; save them in the repository and load them into Prometheus and Grafana.
    """
    try:
        seconds = parse_duration(scrape_interval)
    except ValueError as exc:
        raise UserError(f"scrape_interval: {exc}") from None
    if not 1 <= seconds <= 600:
        raise UserError(f"scrape_interval: {scrape_interval!r} is out of range; give 1s to 10m, e.g. '15s'")
    return build_monitoring(app.require_config(), service, environment, scrape_interval=seconds)

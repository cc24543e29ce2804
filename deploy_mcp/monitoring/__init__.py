"""Monitoring as code: Prometheus alert rules and a Grafana dashboard built from a service's thresholds."""

from deploy_mcp.monitoring.bundle import MonitoringBundle, build_monitoring

__all__ = ["MonitoringBundle", "build_monitoring"]

"""PromQL over the metrics deploy-mcp's router exports, for one service in one environment.

One place builds every query, so the alert rules and the dashboard cannot disagree about what "error rate"
means. The names are the router's (deploy_mcp_requests_total{service,environment,version,status},
deploy_mcp_request_duration_seconds, deploy_mcp_traffic_weight, deploy_mcp_instances_ready) and the same ones
the default [targets.prometheus] templates read. Alert expressions keep the ``service`` and ``environment``
labels (``sum by``), so every alert says which service it is about and the parts of an ``or`` line up.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUESTS = "deploy_mcp_requests_total"
DURATION_BUCKETS = "deploy_mcp_request_duration_seconds_bucket"
TRAFFIC_WEIGHT = "deploy_mcp_traffic_weight"
INSTANCES_READY = "deploy_mcp_instances_ready"
METRICS = (REQUESTS, DURATION_BUCKETS, TRAFFIC_WEIGHT, INSTANCES_READY)
BY = "service, environment"


def label_value(value: str) -> str:
    """A string as a PromQL double-quoted label value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def duration(seconds: float) -> str:
    """A Prometheus duration: 90 -> "1m30s", 45 -> "45s", 0.5 -> "500ms"."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


@dataclass(frozen=True)
class Queries:
    service: str
    environment: str

    @property
    def selector(self) -> str:
        return f'service="{label_value(self.service)}",environment="{label_value(self.environment)}"'

    def series(self, metric: str, extra: str = "") -> str:
        return f"{metric}{{{self.selector}{',' + extra if extra else ''}}}"

    # -- alert expressions (labels: service, environment) -----------------------------------------------------

    def error_ratio(self, window: str) -> str:
        errors = self.series(REQUESTS, 'status=~"5.."')
        return f"sum by ({BY}) (rate({errors}[{window}]))\n  / sum by ({BY}) (rate({self.series(REQUESTS)}[{window}]))"

    def latency(self, quantile: float, window: str) -> str:
        return (
            f"histogram_quantile({quantile:g}, sum by ({BY}, le) (\n  rate({self.series(DURATION_BUCKETS)}[{window}])))"
        )

    def enough_requests(self, window: str, minimum: int) -> str:
        """True while the window holds at least ``minimum`` requests: a rate from a handful is noise."""
        return f"sum by ({BY}) (increase({self.series(REQUESTS)}[{window}])) >= {minimum}"

    def down(self, window: str, *, silent_counts: bool = True) -> str:
        """No instance of any version was ready at any scrape within ``window``; with ``silent_counts``, also
        when readiness is not reported at all (a router that is gone reports nothing).

        A range over the raw samples counts real scrapes (health checks), where a subquery would resample them.
        """
        ready = self.series(INSTANCES_READY)
        none_ready = f"max by ({BY}) (max_over_time({ready}[{window}])) == 0"
        return f"{none_ready}\nor absent_over_time({ready}[{window}])" if silent_counts else none_ready

    def recently_deployed(self, window: str) -> str:
        """More than one version took traffic within ``window``: a deployment happened, so there is a way back."""
        per_version = f"sum by ({BY}, version) (increase({self.series(REQUESTS)}[{window}])) > 0"
        return f"count by ({BY}) ({per_version}) > 1"

    # -- dashboard expressions (one line each, grouped for legends) ---------------------------------------------

    def error_ratio_total(self, window: str = "$__rate_interval") -> str:
        errors = self.series(REQUESTS, 'status=~"5.."')
        return f"(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({self.series(REQUESTS)}[{window}]))"

    def error_ratio_by_version(self, window: str = "$__rate_interval") -> str:
        errors = self.series(REQUESTS, 'status=~"5.."')
        total = f"sum by (version) (rate({self.series(REQUESTS)}[{window}]))"
        return f"(sum by (version) (rate({errors}[{window}])) or {total} * 0) / {total}"

    def latency_total(self, quantile: float, window: str = "$__rate_interval") -> str:
        return f"histogram_quantile({quantile:g}, sum by (le) (rate({self.series(DURATION_BUCKETS)}[{window}])))"

    def latency_by_version(self, quantile: float, window: str = "$__rate_interval") -> str:
        bucket = self.series(DURATION_BUCKETS)
        return f"histogram_quantile({quantile:g}, sum by (version, le) (rate({bucket}[{window}])))"

    def request_rate(self, by: str = "", window: str = "$__rate_interval") -> str:
        grouping = f" by ({by})" if by else ""
        return f"sum{grouping} (rate({self.series(REQUESTS)}[{window}]))"

    def version_share(self, window: str = "$__rate_interval") -> str:
        rate = f"rate({self.series(REQUESTS)}[{window}])"
        return f"sum by (version) ({rate}) / ignoring(version) group_left sum({rate})"

    def ready_instances(self, by: str = "") -> str:
        grouping = f" by ({by})" if by else ""
        return f"sum{grouping} ({self.series(INSTANCES_READY)})"

    def traffic_weight(self) -> str:
        return f"max by (version) ({self.series(TRAFFIC_WEIGHT)})"

    def traffic_shifts(self, window: str) -> str:
        """Non-zero where a version's traffic weight changed: one annotation per rollout step or rollback."""
        return f"changes({self.series(TRAFFIC_WEIGHT)}[{window}]) > 0"

"""Metrics from Prometheus: PromQL templates from deploy.toml, evaluated per version over the analysis window.

Each template is a PromQL expression with ``{service}``, ``{environment}``, ``{version}`` and ``{window}``
placeholders (literal braces doubled, as in Python's str.format) that returns one number. The defaults below read
what the local platform's router exports on /metrics; a service on Kubernetes points them at its own metrics.

Every query of one snapshot is evaluated at the same instant (the ``time`` parameter), so the request count,
the error ratio and the latencies describe exactly the same window. An empty answer means the version has no
series in that window: no traffic, zero requests, which the analysis treats as "no data" and never as a pass.
Anything else that goes wrong (Prometheus down, slow, or rejecting a query) raises MetricSourceError naming the
query, because a metric source that fails quietly is worse than none.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.signals.metrics.base import MetricSourceError

if TYPE_CHECKING:
    import httpx

    from deploy_mcp.config.schema import PrometheusSource

_SELECTOR = 'service="{service}",environment="{environment}",version="{version}"'

# Counted from increase() over the window; Prometheus extrapolates to the window's edges, so it is a float.
REQUESTS_QUERY = "sum(increase(deploy_mcp_requests_total{{" + _SELECTOR + "}}[{window}]))"
# "or vector(0)": a version without a single 5xx has no 5xx series at all, which must read as 0%, not as no data.
ERROR_RATE_QUERY = (
    "(sum(rate(deploy_mcp_requests_total{{" + _SELECTOR + ',status=~"5.."}}[{window}])) or vector(0))'
    " / sum(rate(deploy_mcp_requests_total{{" + _SELECTOR + "}}[{window}]))"
)
# In seconds, as Prometheus histograms are; the snapshot converts to milliseconds.
LATENCY_QUERY = (
    "histogram_quantile({quantile}, sum by (le) (rate(deploy_mcp_request_duration_seconds_bucket{{"
    + _SELECTOR
    + "}}[{window}])))"
)
LATENCY_P50_QUERY = LATENCY_QUERY.replace("{quantile}", "0.5")
LATENCY_P95_QUERY = LATENCY_QUERY.replace("{quantile}", "0.95")
LATENCY_P99_QUERY = LATENCY_QUERY.replace("{quantile}", "0.99")

_P95 = re.compile(r"histogram_quantile\(\s*0?\.95\s*,")
PLACEHOLDERS = "{service}, {environment}, {version} and {window}"
MAX_PARALLEL = 8
DEFAULT_SCRAPE_SECONDS = 15.0


class PrometheusMetrics:
    """A MetricSource backed by the Prometheus HTTP API (``/api/v1/query``)."""

    name = "prometheus"

    def __init__(self, url: str, queries: PrometheusSource | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.queries = _templates(queries)
        # Numbers change only when Prometheus scrapes: asking more often than that only loads it.
        self.sample_seconds = queries.scrape_interval if queries is not None else DEFAULT_SCRAPE_SECONDS
        # increase() needs two scrapes inside its range: a window that must cover an instant reaches one scrape back.
        self.window_granularity_seconds = self.sample_seconds

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        if window_seconds <= 0:
            raise MetricSourceError(f"the metric window must be longer than 0 s, got {window_seconds:g}")
        window = promql_duration(window_seconds)
        evaluated_at = time.time()
        jobs: list[tuple[str, str, str]] = []
        for version in versions:
            values = {"service": service, "environment": environment, "version": version, "window": window}
            for name, query in self.queries.items():
                jobs.append((version, name, self._fill(name, query, values)))
        if not jobs:
            return {}
        with (
            httpx.Client(timeout=self.timeout, limits=httpx.Limits(max_connections=MAX_PARALLEL)) as client,
            ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs))) as pool,
        ):
            answers = list(pool.map(lambda job: self._query(client, job[1], job[2], evaluated_at), jobs))
        numbers: dict[str, dict[str, float | None]] = {version: {} for version in versions}
        for (version, name, _), value in zip(jobs, answers, strict=True):
            numbers[version][name] = value
        return {version: _snapshot(version, window_seconds, numbers[version]) for version in versions}

    def _fill(self, name: str, query: Query, values: dict[str, str]) -> str:
        escaped = {key: _label_value(value) for key, value in values.items()}
        try:
            return query.template.format(**escaped)
        except (KeyError, IndexError, ValueError) as exc:
            where = f"[targets.prometheus].{query.field}" if query.field else f"the built-in {name} query"
            raise MetricSourceError(
                f"{where}: the template cannot be filled in ({type(exc).__name__}: {exc}); "
                f"it may use the placeholders {PLACEHOLDERS}, and literal braces must be doubled ({{{{ and }}}})"
            ) from None

    def _query(self, client: httpx.Client, name: str, promql: str, at: float) -> float | None:
        import httpx

        endpoint = f"{self.url}/api/v1/query"
        try:
            response = client.post(endpoint, data={"query": promql, "time": f"{at:.3f}"})
        except httpx.TimeoutException:
            raise MetricSourceError(
                f"Prometheus at {self.url} did not answer the {name} query within {self.timeout:g} s; query: {promql}"
            ) from None
        except httpx.HTTPError as exc:
            raise MetricSourceError(
                f"cannot reach Prometheus at {self.url} ({exc or type(exc).__name__}); check [targets.prometheus] "
                "url in deploy.toml and that Prometheus is running"
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise MetricSourceError(
                f"{endpoint} answered {response.status_code} with something that is not a Prometheus API answer; "
                "is [targets.prometheus] url the Prometheus server itself (for example http://prometheus:9090)?"
            )
        if document.get("status") != "success":
            kind = document.get("errorType") or f"HTTP {response.status_code}"
            raise MetricSourceError(
                f"Prometheus rejected the {name} query ({kind}: {document.get('error', 'no reason given')}); "
                f"query: {promql}" + (self._fix_hint(name) if response.status_code in (400, 422) else "")
            )
        return _single_number(document.get("data") or {}, name, promql)

    def _fix_hint(self, name: str) -> str:
        query = self.queries.get(name)
        return f"; fix [targets.prometheus].{query.field} in deploy.toml" if query and query.field else ""


def promql_duration(seconds: float) -> str:
    """A PromQL range duration: whole seconds when exact, else milliseconds (PromQL takes no fractions)."""
    milliseconds = max(1, round(seconds * 1000))
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


class Query(NamedTuple):
    """A template to evaluate, and the deploy.toml field it came from (None for a built-in one)."""

    template: str
    field: str | None


def _templates(source: PrometheusSource | None) -> dict[str, Query]:
    """The queries to run, by name; configured templates win, the rest follow the configured p95 when they can.

    p50 and p99 come from the p95 template with its quantile swapped when it is a histogram_quantile, so a
    service that points latency_p95 at its own histogram gets consistent percentiles without more settings.
    ``requests`` and ``latency_p99`` are read from the configuration too, once the schema offers them.
    """
    if source is None:
        return {
            "requests": Query(REQUESTS_QUERY, None),
            "error_rate": Query(ERROR_RATE_QUERY, None),
            "latency_p50": Query(LATENCY_P50_QUERY, None),
            "latency_p95": Query(LATENCY_P95_QUERY, None),
            "latency_p99": Query(LATENCY_P99_QUERY, None),
        }
    p95 = source.latency_p95

    def configured(name: str, default: str) -> Query:
        value = getattr(source, name, None)
        return Query(value, name) if isinstance(value, str) and value else Query(default, None)

    def quantile(name: str, q: str, default: str) -> Query:
        if isinstance(getattr(source, name, None), str):
            return configured(name, default)
        if _P95.search(p95):
            return Query(_P95.sub(f"histogram_quantile({q},", p95, count=1), "latency_p95")
        return Query(default, None)

    return {
        "requests": configured("requests", REQUESTS_QUERY),
        "error_rate": Query(source.error_rate, "error_rate"),
        "latency_p50": quantile("latency_p50", "0.5", LATENCY_P50_QUERY),
        "latency_p95": Query(p95, "latency_p95"),
        "latency_p99": quantile("latency_p99", "0.99", LATENCY_P99_QUERY),
    }


def _label_value(value: str) -> str:
    """Escaped for a double-quoted PromQL string, so a version can never break out of its label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _single_number(data: dict[str, Any], name: str, promql: str) -> float | None:
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == "scalar":
        return _number(result)
    if result_type != "vector" or not isinstance(result, list):
        raise MetricSourceError(
            f"the {name} query returned a {result_type or 'malformed'} result; it must return one number "
            f"(an instant vector with one series, or a scalar); query: {promql}"
        )
    if not result:
        return None
    if len(result) > 1:
        raise MetricSourceError(
            f"the {name} query returned {len(result)} series where one number per version is needed; aggregate it "
            f"(for example with sum(...)); query: {promql}"
        )
    return _number(result[0].get("value"))


def _number(sample: Any) -> float | None:
    """The value of a [timestamp, "value"] pair; NaN (0/0, a quantile of nothing) is no data."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return None
    return None if math.isnan(value) else value


def _snapshot(version: str, window_seconds: float, numbers: dict[str, float | None]) -> MetricSnapshot:
    increase = max(0.0, numbers.get("requests") or 0.0)
    requests = round(increase)
    if requests == 0:
        return MetricSnapshot(version=version, window_seconds=window_seconds)
    # An empty error ratio while requests were served means no 5xx series exists: zero errors.
    error_rate = min(1.0, max(0.0, numbers.get("error_rate") or 0.0))
    return MetricSnapshot(
        version=version,
        window_seconds=window_seconds,
        requests=requests,
        errors=round(error_rate * requests),
        error_rate=error_rate,
        p50_ms=_milliseconds(numbers.get("latency_p50")),
        p95_ms=_milliseconds(numbers.get("latency_p95")),
        p99_ms=_milliseconds(numbers.get("latency_p99")),
        requests_per_second=increase / window_seconds,
    )


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)

"""Health: is one service (or version) healthy right now, and are all instances of a service healthy on their platform.

Requests go through an ``httpx.Client`` the platform's prober hands out (``Prober.http_client``): its base URL may
be a local router, a version's preview, or the Kubernetes API server's service proxy, and this module never builds
one. A plain URL is still accepted for a quick check by hand.

The rule is the skill's: a 2xx answer, and when the body is JSON with a ``status`` field, that status says so.
The skill writes "healthy" and its references write "ok", so both count, in any case. Anything else (a
"degraded" or "starting" status, a 503, a refused connection, a timeout) is unhealthy, and the result says why
in a sentence an agent can repeat to a person. Network trouble is an answer here, never an exception: a health
check that raises would turn "the new version is down" into "the tool is broken".
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.core.target import ErrorCode, InstanceHealth, TargetError

if TYPE_CHECKING:
    import httpx

    from deploy_mcp.core.platform import Platform

HEALTHY_STATUSES = frozenset({"ok", "healthy"})
BODY_EXCERPT = 200


class HealthCheck(BaseModel):
    """One GET of a health URL and what it proves."""

    model_config = ConfigDict(extra="forbid")

    url: str
    healthy: bool
    status_code: int | None = Field(default=None, description="HTTP status; None when no answer came")
    status: str | None = Field(default=None, description="the 'status' field of a JSON answer")
    version: str | None = Field(default=None, description="the 'version' field of a JSON answer")
    latency_ms: float | None = None
    detail: str = Field(description="one sentence: what answered, or why it is unhealthy")


class HealthSummary(BaseModel):
    """Every instance of a service (or of one version) probed now, summed up for a verdict."""

    model_config = ConfigDict(extra="forbid")

    service: str
    environment: str
    version: str | None = None
    healthy: bool = Field(description="at least one instance, all of them healthy, and no crash loop")
    total: int = 0
    healthy_count: int = 0
    crash_loop: bool = False
    restarts: int = 0
    instances: list[InstanceHealth] = Field(default_factory=list)
    detail: str


def check_health(where: httpx.Client | str, path: str = "", *, timeout: float = 5.0) -> HealthCheck:
    """GET ``path`` once through ``where`` (a prober's client, or a full URL) and judge it; never raises for
    network errors."""
    import httpx

    if isinstance(where, str):
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            return check_health(client, where + path, timeout=timeout)
    client = where
    headers = {"Accept": "application/json", "User-Agent": "deploy-mcp-health"}
    try:
        request = client.build_request("GET", path, headers=headers, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return HealthCheck(url=str(path), healthy=False, detail=describe_failure(str(path), exc, timeout))
    url = str(request.url)
    started = time.perf_counter()
    try:
        response = client.send(request, follow_redirects=False)
    except httpx.HTTPError as exc:
        return HealthCheck(url=url, healthy=False, detail=describe_failure(url, exc, timeout))
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return judge_health(url, response, latency_ms)


def judge_health(url: str, response: httpx.Response, latency_ms: float | None) -> HealthCheck:
    """The health rule applied to an answer already received (smoke tests reuse it)."""
    document = json_body(response)
    status = _text_field(document, "status", numbers=False)  # as the local platform's own probe reads it
    version = _text_field(document, "version", numbers=True)
    code = response.status_code
    if not 200 <= code < 300:
        reason = f"{url} answered {code}" + (f' with status "{status}"' if status else _excerpt(response))
        if 300 <= code < 400 and response.headers.get("location"):
            reason += f" (a redirect to {response.headers['location']}; health checks do not follow redirects)"
        healthy, detail = False, reason
    elif status is not None and status.lower() not in HEALTHY_STATUSES:
        healthy, detail = False, f'{url} answered {code} but reports status "{status}" (healthy is "ok" or "healthy")'
    else:
        healthy = True
        detail = f"{url} answered {code}" + (f' with status "{status}"' if status else "")
    return HealthCheck(
        url=url,
        healthy=healthy,
        status_code=code,
        status=status,
        version=version,
        latency_ms=latency_ms,
        detail=detail,
    )


def json_body(response: httpx.Response) -> Any:
    """The JSON document of an answer, or None when it is not JSON; the content type is not trusted either way."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def describe_failure(url: str, exc: Exception, timeout: float) -> str:
    """A sentence for an attempt that got no HTTP answer at all."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"{url} did not answer: timeout after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc) or "connection failed"
        if "refused" in reason.lower():
            return f"{url} did not answer: connection refused (nothing listens there)"
        return f"{url} did not answer: cannot connect ({reason})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"{url} is not a valid http(s) URL ({exc})"
    return f"{url} did not answer: {exc or type(exc).__name__}"


def _text_field(document: Any, name: str, *, numbers: bool) -> str | None:
    if not isinstance(document, dict):
        return None
    value = document.get(name)
    if isinstance(value, str) or (numbers and isinstance(value, int | float) and not isinstance(value, bool)):
        from deploy_mcp.core.masking import redact_output

        return redact_output(str(value))
    return None


def _excerpt(response: httpx.Response) -> str:
    """The start of an error answer, secret shapes masked: an error page may print the service's configuration,
    and the excerpt becomes a deployment's reason. The service's own env values are masked by the caller, which
    knows them (core/runner/actions.py, tools/validation.py)."""
    from deploy_mcp.core.masking import redact_output

    text = redact_output(response.content[:BODY_EXCERPT].decode("utf-8", "replace").strip())
    return f": {text}" if text else ""


def check_instances(platform: Platform, service: str, environment: str, version: str | None = None) -> HealthSummary:
    """Probe every instance through the platform's prober now; nothing running is an unhealthy answer, not an error.

    A typo in the service or environment still raises the target's error, because that is the caller's mistake
    to fix, not the service's state.
    """
    try:
        probes = platform.prober.health(service, environment, version)
        state = platform.workload.state(service, environment)
    except TargetError as exc:
        if exc.code not in (ErrorCode.NOT_RUNNING, ErrorCode.UNAVAILABLE, ErrorCode.NO_INSTANCES):
            raise
        return HealthSummary(service=service, environment=environment, version=version, healthy=False, detail=str(exc))
    versions = [v for v in state.versions if version is None or v.version == version]
    crash_loop = any(v.crash_loop for v in versions)
    restarts = sum(v.restarts for v in versions)
    healthy_count = sum(1 for probe in probes if probe.healthy)
    total = len(probes)
    healthy = total > 0 and healthy_count == total and not crash_loop
    scope = f"{service}/{environment}" + (f" version {version}" if version else "")
    if total == 0:
        detail = f"{scope} has no instances running"
    elif healthy:
        detail = f"{scope}: all {total} instance(s) healthy"
    else:
        failing = [f"{p.instance}: {p.detail or 'unhealthy'}" for p in probes if not p.healthy]
        detail = f"{scope}: {healthy_count} of {total} instance(s) healthy"
        if failing:
            detail += "; " + "; ".join(failing)
    if crash_loop:
        looping = [f"{v.version} ({v.problem})" if v.problem else v.version for v in versions if v.crash_loop]
        detail += f"; crash loop in {', '.join(looping)} ({restarts} restart(s))"
    return HealthSummary(
        service=service,
        environment=environment,
        version=version,
        healthy=healthy,
        total=total,
        healthy_count=healthy_count,
        crash_loop=crash_loop,
        restarts=restarts,
        instances=probes,
        detail=detail,
    )

"""Smoke tests: a handful of GETs that prove a release serves what users need, right after it starts.

A check is a path from ``services.<name>.smoke``. ``!/path`` must answer 404 (an unknown path must not be
served by a catch-all that hides routing bugs); the health path must also pass the health rule; every other
path must answer 2xx, and an answer that claims to be JSON must be JSON (a status API that returns a broken
body is broken). The skill is blunt about the outcome and so is the report: any failure means rollback is
recommended. Checks run in parallel, so one hanging path costs one timeout, not one per check.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.signals.health import describe_failure, json_body, judge_health

if TYPE_CHECKING:
    import httpx

HEALTH_TIMEOUT = 5.0  # the skill's limit for the health check, tighter than the other checks' 10 s
MAX_PARALLEL = 8


class SmokeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: str = Field(description="the check as configured: a path, or !path for an expected 404")
    url: str
    passed: bool
    status_code: int | None = None
    latency_ms: float | None = None
    detail: str


class SmokeReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    passed: bool = Field(description="every check passed")
    results: list[SmokeResult] = Field(default_factory=list)
    summary: str


def run_smoke(
    where: httpx.Client | str, checks: list[str], *, timeout: float = 10.0, health_path: str = "/health"
) -> SmokeReport:
    """Run every check through ``where``: a prober's client (the service as users reach it, or one version's
    preview) or a base URL; never raises for network errors: a check that got no answer fails with the reason."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    if isinstance(where, str):
        limits = httpx.Limits(max_connections=MAX_PARALLEL)
        with httpx.Client(base_url=where, timeout=timeout, follow_redirects=False, limits=limits) as client:
            return run_smoke(client, checks, timeout=timeout, health_path=health_path)
    client = where
    base = str(client.base_url).rstrip("/")
    if not checks:
        return SmokeReport(base_url=base, passed=True, summary=f"no smoke checks are configured for {base}")
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(checks))) as pool:
        results = list(pool.map(lambda check: _run_check(client, check, timeout, health_path), checks))
    failed = [r for r in results if not r.passed]
    if not failed:
        summary = f"all {len(results)} smoke check(s) passed against {base}"
    else:
        reasons = "; ".join(f"{r.check}: {r.detail}" for r in failed)
        summary = (
            f"{len(failed)} of {len(results)} smoke check(s) failed against {base} ({reasons}): rollback recommended"
        )
    return SmokeReport(base_url=base, passed=not failed, results=results, summary=summary)


def _run_check(client: httpx.Client, check: str, timeout: float, health_path: str) -> SmokeResult:
    import httpx

    expect_missing = check.startswith("!")
    path = check[1:] if expect_missing else check
    path = path if path.startswith("/") else "/" + path
    is_health = not expect_missing and path.split("?", 1)[0] == health_path
    limit = min(timeout, HEALTH_TIMEOUT) if is_health else timeout
    headers = {"User-Agent": "deploy-mcp-smoke"}
    try:
        request = client.build_request("GET", path, timeout=limit, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return SmokeResult(check=check, url=path, passed=False, detail=describe_failure(path, exc, limit))
    url = str(request.url)
    started = time.perf_counter()
    try:
        response = client.send(request, follow_redirects=False)
    except httpx.HTTPError as exc:
        return SmokeResult(check=check, url=url, passed=False, detail=describe_failure(url, exc, limit))
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    code = response.status_code
    if expect_missing:
        passed = code == 404
        detail = "answered 404 as expected" if passed else f"expected 404 for an unknown path, got {code}"
    elif is_health:
        health = judge_health(url, response, latency_ms)
        passed, detail = health.healthy, health.detail.removeprefix(f"{url} ")
    elif not 200 <= code < 300:
        passed, detail = False, f"expected 2xx, got {code}" + _where(response)
    elif _claims_json(response) and json_body(response) is None:
        passed, detail = False, f"answered {code} with a JSON content type but a body that is not valid JSON"
    else:
        passed, detail = True, f"answered {code}"
    return SmokeResult(check=check, url=url, passed=passed, status_code=code, latency_ms=latency_ms, detail=detail)


def _claims_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _where(response: httpx.Response) -> str:
    if 300 <= response.status_code < 400 and response.headers.get("location"):
        return f" (a redirect to {response.headers['location']}; smoke checks do not follow redirects)"
    return ""

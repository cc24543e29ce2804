"""What the analysis asks of any metric source, and the one error a source may raise.

A source answers one question: what did each of these versions do over the last N seconds. Two rules make its
answer safe to judge. A version that served nothing is an answer (zero requests, no latencies), never a missing
key and never an error, so "no data" reaches the analysis, which refuses to count it as a pass. A source that
cannot answer at all raises ``MetricSourceError``, which the analysis retries and also never counts as a pass;
returning zeros instead would make an outage of Prometheus look like a healthy canary.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.errors import UserError


class MetricSourceError(UserError):
    """The metric source could not answer; the message says what failed and where to fix it."""


@runtime_checkable
class MetricSource(Protocol):
    """Per-version RED numbers for one service and environment."""

    name: str

    def snapshot(
        self, service: str, environment: str, versions: list[str], window_seconds: float
    ) -> dict[str, MetricSnapshot]:
        """One MetricSnapshot per requested version; raises MetricSourceError when the source cannot answer."""
        ...


def empty_snapshot(version: str, window_seconds: float) -> MetricSnapshot:
    """A version that served no request in the window: zero requests and unknown latencies."""
    return MetricSnapshot(version=version, window_seconds=window_seconds)

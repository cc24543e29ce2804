"""The one error a metric source may raise; what the analysis asks of a source is core.analysis.MetricSource.

A source answers one question: what did each of these versions do over the last N seconds. Two rules make its
answer safe to judge. A version that served nothing is an answer (zero requests, no latencies), never a missing
key and never an error, so "no data" reaches the analysis, which refuses to count it as a pass. A source that
cannot answer at all raises ``MetricSourceError``, which the analysis retries and also never counts as a pass;
returning zeros instead would make an outage of Prometheus look like a healthy canary.
"""

from __future__ import annotations

from deploy_mcp.core.analysis import MetricSource
from deploy_mcp.core.target import MetricSnapshot
from deploy_mcp.errors import UserError

__all__ = ["MetricSource", "MetricSourceError", "empty_snapshot"]


class MetricSourceError(UserError):
    """The metric source could not answer; the message says what failed and where to fix it."""


def empty_snapshot(version: str, window_seconds: float) -> MetricSnapshot:
    """A version that served no request in the window: zero requests and unknown latencies."""
    return MetricSnapshot(version=version, window_seconds=window_seconds)

"""Preflight: the pre-deployment checklist, evaluated with evidence before a deploy (see ``run.py``)."""

from deploy_mcp.preflight.checks import CheckResult, CheckStatus
from deploy_mcp.preflight.run import REQUIRED_BY_MODE, PreflightReport, run_preflight

__all__ = ["REQUIRED_BY_MODE", "CheckResult", "CheckStatus", "PreflightReport", "run_preflight"]

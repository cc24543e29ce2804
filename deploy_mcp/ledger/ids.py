"""Deployment ids: ``deploy-YYYY-MM-DD-NNN``, the skill's format, readable by a person on call.

The number counts from 001 within a UTC day and grows past three digits only after 999, so the id alone does
not sort correctly by string; backends keep the day and the number in their own columns and sort on those.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

PREFIX = "deploy-"
_PATTERN = re.compile(r"deploy-(\d{4}-\d{2}-\d{2})-(\d{3,})")


def format_id(day: date, number: int) -> str:
    if number < 1:
        raise ValueError(f"deployment numbers start at 1, got {number}")
    return f"{PREFIX}{day.isoformat()}-{number:03d}"


def parse_id(deployment_id: str) -> tuple[str, int] | None:
    """``(day as YYYY-MM-DD, number)``, or None when the text is not a deployment id."""
    match = _PATTERN.fullmatch(deployment_id)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def id_day(moment: datetime) -> date:
    """The UTC day an id is numbered in; a naive time is taken as UTC, as everywhere in the ledger."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()

"""How configured numbers are said to people and agents: one wording for a plan, a policy message and DEPLOY.md.

Configured values (a 30 s bake, a 1% threshold, 500 ms) are shown exactly as written, with ``:g``; measured values
are rounded where they are measured (core/analysis.py), since 3.14159% says nothing 3.14% does not.
"""

from __future__ import annotations

__all__ = ["human_duration", "milliseconds", "percent"]


def human_duration(seconds: float) -> str:
    """Whole hours or minutes when the value is a whole number of them, seconds otherwise: 90 s stays 90 s."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def milliseconds(value: float) -> str:
    return f"{value:g} ms"

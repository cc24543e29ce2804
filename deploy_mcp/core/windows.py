"""Deploy windows: when a scheduled window is open, when it closes and when the next one opens, in UTC.

Apart from the policy because calendars are their own subject: a window belongs to the day it opens (fri 22:00-02:00
runs into Saturday), start == end means 24 hours, and the answer must not depend on the server's time zone.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

from deploy_mcp.config.schema import DeployWindow

__all__ = ["describe_window", "next_window_opening", "open_window", "span_text", "utc_text"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def describe_window(window: DeployWindow) -> str:
    return f"{', '.join(window.days)} {window.start}-{window.end} UTC"


def open_window(windows: list[DeployWindow], now: datetime) -> tuple[DeployWindow, datetime] | None:
    """The window ``now`` falls in and when it closes, or None.

    A window belongs to the day it opens: fri 22:00-02:00 runs from Friday 22:00 to Saturday 02:00, and
    start == end means 24 hours. So yesterday's openings are searched too.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    for window in windows:
        for opens, closes in _occurrences(window, now.astimezone(UTC).date(), range(-1, 1)):
            if opens <= now < closes:
                return window, closes
    return None


def next_window_opening(windows: list[DeployWindow], now: datetime) -> datetime | None:
    """The first opening after ``now`` across all windows within a week, or None when no window has a day."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    openings = [
        opens
        for window in windows
        for opens, _ in _occurrences(window, now.astimezone(UTC).date(), range(0, 8))
        if opens > now
    ]
    return min(openings, default=None)


def _occurrences(window: DeployWindow, today: date, offsets: range) -> list[tuple[datetime, datetime]]:
    start, end = _clock(window.start), _clock(window.end)
    length = (end - start) % timedelta(days=1) or timedelta(days=1)
    found = []
    for offset in offsets:
        day = today + timedelta(days=offset)
        if _DAYS[day.weekday()] in window.days:
            opens = datetime.combine(day, time(), tzinfo=UTC) + start
            found.append((opens, opens + length))
    return found


def _clock(text: str) -> timedelta:
    hours, minutes = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def span_text(delta: timedelta) -> str:
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    return " ".join(parts)

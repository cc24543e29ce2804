"""Who waits for events of which deployment: the part of an event log that wakes waiters instead of polling.

Both backends keep one of these. SQLite calls `wake` after its own appends (a waiter in another process reads on
its next poll); PostgreSQL calls it from its LISTEN thread for appends made by any replica, and `wake_all` after it
had to reconnect, since a notification sent while it was away is lost and every waiter must read again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Subscribers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[threading.Event, frozenset[str] | None]]] = {}

    def add(self, deployment_id: str, wake: threading.Event, kinds: frozenset[str] | None = None) -> Callable[[], None]:
        """``kinds``: only events of these kinds wake (a driver waiting for control requests must not be woken by
        the events it writes itself); None: every event."""
        entry = (wake, kinds)
        with self._lock:
            self._waiting.setdefault(deployment_id, set()).add(entry)

        def remove() -> None:
            with self._lock:
                waiting = self._waiting.get(deployment_id)
                if waiting is not None:
                    waiting.discard(entry)
                    if not waiting:
                        del self._waiting[deployment_id]

        return remove

    def wake(self, deployment_id: str, kind: str) -> None:
        with self._lock:
            waiting = [wake for wake, kinds in self._waiting.get(deployment_id, ()) if kinds is None or kind in kinds]
        for event in waiting:
            event.set()

    def wake_all(self) -> None:
        with self._lock:
            waiting = [wake for entries in self._waiting.values() for wake, _ in entries]
        for event in waiting:
            event.set()

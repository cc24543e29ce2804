"""The control channel: pause, resume, promote and abort reach a running deployment through its event log.

Why the event log and not a field of the record: the ledger's ``append_event`` is atomic and numbered, so a
request written by another process (a CLI in a terminal, a second MCP server) is never lost or overwritten,
and it stays in the log as who asked for what and when. The process that drives the deployment reads new
``control`` events at every wait (at least every ``POLL_SECONDS``; at once when the request comes from its own
process, through ``wake``), acts on them in order, and answers each with a ``control_applied`` event naming
its sequence number, which the requester waits for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from deploy_mcp.ledger import LedgerError

if TYPE_CHECKING:
    from deploy_mcp.ledger import Ledger

CONTROL_EVENT = "control"
ACK_EVENT = "control_applied"
POLL_SECONDS = 0.5


class ControlAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"


@dataclass(frozen=True)
class ControlRequest:
    seq: int
    action: ControlAction
    by: str
    reason: str | None = None

    def describe(self) -> str:
        return f"{self.action.value} requested by {self.by}" + (f": {self.reason}" if self.reason else "")


def send(ledger: Ledger, deployment_id: str, action: ControlAction, by: str, reason: str | None = None) -> int:
    """Write a request into the deployment's log; returns its sequence number."""
    message = f"{action.value} requested by {by}" + (f": {reason}" if reason else "")
    event = ledger.append_event(
        deployment_id, CONTROL_EVENT, message, {"action": action.value, "by": by, "reason": reason}
    )
    return event.seq


def wait_for_ack(ledger: Ledger, deployment_id: str, seq: int, timeout: float) -> str | None:
    """The owner's answer to request ``seq`` (its message), or None if none came within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        for event in ledger.events(deployment_id):
            if event.kind == ACK_EVENT and event.data.get("control_seq") == seq:
                return event.message
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


class Inbox:
    """Requests addressed to one deployment that its driver has not handled yet, oldest first."""

    def __init__(self, ledger: Ledger, deployment_id: str) -> None:
        self.ledger = ledger
        self.deployment_id = deployment_id
        self.wake = threading.Event()
        self._queue: list[ControlRequest] = []
        self._seen = max((event.seq for event in ledger.events(deployment_id)), default=0)
        self._polled = time.monotonic()

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not self.wake.is_set() and now - self._polled < POLL_SECONDS:
            return
        self.wake.clear()
        self._polled = now
        try:
            events = self.ledger.events(self.deployment_id)
        except LedgerError:
            return  # busy for a moment: the next poll reads it; a control request is never lost, only later
        for event in events:
            if event.seq <= self._seen:
                continue
            self._seen = event.seq
            if event.kind != CONTROL_EVENT:
                continue
            try:
                action = ControlAction(event.data.get("action"))
            except ValueError:
                continue
            self._queue.append(
                ControlRequest(event.seq, action, str(event.data.get("by") or "someone"), event.data.get("reason"))
            )

    def pending(self) -> bool:
        self.refresh()
        return bool(self._queue)

    def peek(self) -> ControlRequest | None:
        self.refresh()
        return self._queue[0] if self._queue else None

    def take(self) -> ControlRequest | None:
        self.refresh()
        return self._queue.pop(0) if self._queue else None

    def wait(self, timeout: float) -> ControlRequest | None:
        """The next request, waiting up to ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        while True:
            request = self.take()
            if request is not None:
                return request
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.wake.wait(min(POLL_SECONDS, remaining))

    def ack(self, request: ControlRequest, message: str) -> None:
        self.ledger.append_event(
            self.deployment_id, ACK_EVENT, message, {"control_seq": request.seq, "action": request.action.value}
        )

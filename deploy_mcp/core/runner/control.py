"""The control channel: pause, resume, promote and abort reach a running deployment through its event log.

Why the event log and not a field of the record: the ledger's ``append_event`` is atomic and numbered, so a
request written by another process (a CLI in a terminal, a second MCP server) is never lost or overwritten,
and it stays in the log as who asked for what and when. The process that drives the deployment subscribes to
its ``control`` events and acts on them in order, answering each with a ``control_applied`` event naming its
sequence number, which the requester waits for the same way. How the news travels is the ledger's: PostgreSQL
pushes every replica's appends (LISTEN/NOTIFY), so nobody polls; SQLite wakes waiters of its own process at once
and others read at their next poll, every ``POLL_SECONDS``.
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
ACK_POLL_SECONDS = 0.05


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
    heard = threading.Event()
    unsubscribe = ledger.subscribe(deployment_id, heard, frozenset({ACK_EVENT}))
    between_reads = None if ledger.pushes_events else ACK_POLL_SECONDS
    try:
        while True:
            heard.clear()
            for event in ledger.events(deployment_id):
                if event.kind == ACK_EVENT and event.data.get("control_seq") == seq:
                    return event.message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            heard.wait(remaining if between_reads is None else min(between_reads, remaining))
    finally:
        unsubscribe()


class Inbox:
    """Requests addressed to one deployment that its driver has not handled yet, oldest first."""

    def __init__(self, ledger: Ledger, deployment_id: str) -> None:
        self.ledger = ledger
        self.deployment_id = deployment_id
        self.wake = threading.Event()
        self._queue: list[ControlRequest] = []
        self._pushed = ledger.pushes_events
        # Subscribed before the first read: a request appended in between wakes us and is read next time.
        self._unsubscribe = ledger.subscribe(deployment_id, self.wake, frozenset({CONTROL_EVENT}))
        self._seen = max((event.seq for event in ledger.events(deployment_id)), default=0)
        self._polled = time.monotonic()
        self._retry = False  # a read failed: poll until one succeeds, whatever the ledger pushes

    def close(self) -> None:
        self._unsubscribe()

    def refresh(self, *, force: bool = False) -> None:
        """Read new requests when one was announced, or (a ledger that does not push) when a poll is due."""
        now = time.monotonic()
        due = (self._retry or not self._pushed) and now - self._polled >= POLL_SECONDS
        if not force and not self.wake.is_set() and not due:
            return
        self.wake.clear()
        self._polled = now
        try:
            events = self.ledger.events(self.deployment_id)
        except LedgerError:
            self._retry = True
            return  # busy for a moment: the next poll reads it; a control request is never lost, only later
        self._retry = False
        for event in events:
            if event.seq <= self._seen:
                continue
            self._seen = event.seq
            if event.kind != CONTROL_EVENT:
                continue
            try:
                action = ControlAction(str(event.data.get("action")))  # None and unknown names raise ValueError alike
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
            polling = self._retry or not self._pushed
            self.wake.wait(min(POLL_SECONDS, remaining) if polling else remaining)

    def ack(self, request: ControlRequest, message: str) -> None:
        self.ledger.append_event(
            self.deployment_id, ACK_EVENT, message, {"control_seq": request.seq, "action": request.action.value}
        )
